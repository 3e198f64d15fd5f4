//! A mutex lock that survives a panic of an earlier holder: the data a
//! panicking handler left is still the server's, and one failed request
//! must not fail every later one.

use std::sync::{Mutex, MutexGuard};

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
