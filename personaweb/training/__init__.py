"""Review decisions as training data: preference pairs, supervised examples, blind votes."""
