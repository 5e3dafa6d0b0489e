"""One module per RunConfig section; each stage receives only its own section."""
