"""Built-in model runtimes for redesmyn's model repository.

Each runtime is a module with ``load(path)`` (the artifact's local path in,
a model out) and ``predict(model, df)`` (a ``polars.DataFrame`` batch in,
one prediction per row out), the shape of ``py.loader`` / ``py.handler``.
The repository (src/repository/) picks the module from a model's settings;
this package ships inside the npm package and is put on the Python path of
every server that serves a repository.
"""
