// The addon links no libpython: Python handlers load it at run time
// (crates/redesmyn-python), so the addon loads wherever Node runs.
fn main() {
    napi_build::setup();
}
