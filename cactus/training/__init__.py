"""Training set encoders: fine-tuning (``trainer.train``), self-supervised pretraining (``trainer.pretrain``,
``selfsup``), their options (``config``, importable without torch), checkpoints (``checkpoint``), resumable
state (``state``) and data parallelism (``distributed``)."""
