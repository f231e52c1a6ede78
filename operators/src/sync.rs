//! Locks shared between the workers and the threads that read their state.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, recovering the guard if a thread panicked while holding it: the state behind
/// these locks (counters, gauges, dictionaries, sinks) stays consistent at every step, so a
/// panic elsewhere must not cascade into every reader.
///
/// # Examples
///
/// ```
/// let m = std::sync::Mutex::new(1);
/// *sensorflow_operators::lock(&m) += 1;
/// assert_eq!(*sensorflow_operators::lock(&m), 2);
/// ```
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads `l`, recovering the guard if a writer panicked (see [`lock`]).
pub fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `l`, recovering the guard if a thread panicked holding it (see [`lock`]).
pub fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
