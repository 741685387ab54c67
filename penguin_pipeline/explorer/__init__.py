"""The model explorer: a Shiny for Python app asking the prediction API (make app)."""
