"""The book's lab as a plain script (the peer for `make bench`): penguins into DuckDB, fit, pin
with vetiver.
"""

import sys
from pathlib import Path

import duckdb
import pandas as pd
from palmerpenguins import load_penguins
from pins import board_folder
from sklearn.linear_model import LinearRegression
from vetiver import VetiverModel, vetiver_pin_write

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
con = duckdb.connect(str(out / "penguins.duckdb"))
penguins = load_penguins()
con.execute("CREATE OR REPLACE TABLE penguins AS SELECT * FROM penguins")
df = con.execute("SELECT * FROM penguins").df().dropna()
X = pd.get_dummies(df[["bill_length_mm", "species", "sex"]], drop_first=True)
y = df["body_mass_g"]
model = LinearRegression().fit(X, y)
print(f"R^2 {model.score(X, y):.4f}")
v = VetiverModel(model, model_name="penguin_model", prototype_data=X)
vetiver_pin_write(board_folder(str(out / "board"), allow_pickle_read=True), v)
