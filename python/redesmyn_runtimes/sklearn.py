"""scikit-learn estimators saved with joblib (``.joblib``) or pickle (``.pkl``).

Loading a pickle runs code from the file: serve only artifacts you trust.
"""
import pickle

from ._features import matrix, rows


def load(path: str):
    if path.endswith((".pkl", ".pickle")):
        with open(path, "rb") as f:
            return pickle.load(f)
    import joblib

    return joblib.load(path)


def predict(model, df):
    return rows(model.predict(matrix(df)))


def predict_proba(model, df):
    return rows(model.predict_proba(matrix(df)))
