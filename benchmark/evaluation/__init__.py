"""Evaluation: the pools a served model is run over, the probes that fill its evidence (served
lists, latent ranks, relearning) and the reference evidence of the original model and the oracle.
Imports the recommender, the metrics, `tasks/` and `benchmark.util`."""
