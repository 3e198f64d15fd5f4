"""XGBoost boosters saved with ``save_model`` (``.json`` or ``.ubj``)."""
from ._features import matrix, rows


def load(path: str):
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(path)
    return booster


def predict(model, df):
    import xgboost as xgb

    return rows(model.predict(xgb.DMatrix(matrix(df))))
