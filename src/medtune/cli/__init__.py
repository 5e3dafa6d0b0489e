"""One thin module per command: parse -> config -> stage.run(). Each defines register(app)."""
