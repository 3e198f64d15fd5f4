"""LightGBM boosters saved as text (``Booster.save_model('model.txt')``)."""
from ._features import matrix, rows


def load(path: str):
    import lightgbm as lgb

    return lgb.Booster(model_file=path)


def predict(model, df):
    return rows(model.predict(matrix(df)))
