"""Results: the result record and its schema, where results live, submission artifacts and the
verification ledger. Imports evaluation, the recommender (artifacts), `tasks/` and
`benchmark.util`; never a method."""
