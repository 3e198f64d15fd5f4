// The example pipeline's feature step (TypeScript): measurements sent in
// millimetres, scaled to the centimetres the iris models were trained on.
const FEATURES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];

export function predict(batch) {
  return Object.fromEntries(FEATURES.map((f) => [f, Float64Array.from(batch.columns[`${f}_mm`], (mm) => mm / 10)]));
}
