"""End-to-end tests: whole local runs of Sakila and of the demo."""
