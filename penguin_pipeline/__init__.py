"""penguin_pipeline: the Palmer Penguins data project of *DevOps for Data Science*, chapter 2,
as a Dagster asset graph."""
