"""One module per console area; each exposes `routes(console)`."""
