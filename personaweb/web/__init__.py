"""The Django shell around the persona core: models, the ORM store, runs, views, consumers."""
