"""One small script per DVC stage: read params and inputs, call seqgan_core, write outputs and metrics."""
