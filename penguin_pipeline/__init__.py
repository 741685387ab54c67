"""penguin_pipeline: the Palmer Penguins data project of *DevOps for Data Science*, ch. 2, as a Dagster asset graph."""
