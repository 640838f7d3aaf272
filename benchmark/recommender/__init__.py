"""The recommender: item features, the semantic-ID tokenizer, the TIGER-style model, training,
constrained decoding, the SASRec reference and the base model. Imports `tasks/` and
`benchmark.util` only."""
