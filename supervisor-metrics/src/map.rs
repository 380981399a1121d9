//! [`ServiceMap`]: the per-service state an adapter resolves once per spawn.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Per-service state of a metrics adapter, keyed by service name, shared by
/// every live handle of that name.
///
/// An adapter's [`MetricsSink::resolve`](crate::MetricsSink::resolve) calls
/// [`acquire`](Self::acquire), which returns the name's entry (creating it the
/// first time) and counts one more live handle; its
/// [`service_removed`](crate::MetricsSink::service_removed) calls
/// [`release`](Self::release), which returns the entry only when the last
/// handle of that name is released, so the adapter removes the series exactly
/// when no live service uses them any more. A respawn of a terminated
/// service's name reuses its entry: its counters continue.
///
/// The lock is taken at spawn and removal only; events go straight to the
/// handle.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use supervisor_metrics::ServiceMap;
///
/// let restarts: ServiceMap<AtomicU64> = ServiceMap::new();
/// let old = restarts.acquire("feed", |_name| AtomicU64::new(0));
/// old.fetch_add(1, Ordering::Relaxed);
/// // A respawn of the same name shares the entry.
/// let new = restarts.acquire("feed", |_name| AtomicU64::new(0));
/// new.fetch_add(1, Ordering::Relaxed);
/// assert_eq!(restarts.len(), 1);
///
/// assert!(restarts.release(old).is_none()); // `new` still uses it.
/// let last = restarts.release(new).unwrap();
/// assert_eq!(last.load(Ordering::Relaxed), 2);
/// assert!(restarts.is_empty());
/// ```
pub struct ServiceMap<T> {
    entries: Mutex<HashMap<Arc<str>, Shared<T>>>,
}

/// One name's entry and how many live handles hold it.
struct Shared<T> {
    name: Arc<str>,
    value: Arc<T>,
    handles: usize,
}

impl<T> ServiceMap<T> {
    /// An empty map.
    ///
    /// # Examples
    ///
    /// ```
    /// let map: supervisor_metrics::ServiceMap<u64> = supervisor_metrics::ServiceMap::new();
    /// assert!(map.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The entry of `service`, created with `create` (given the interned
    /// name) if there is none; counts one more live handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::ServiceMap;
    ///
    /// let names: ServiceMap<String> = ServiceMap::new();
    /// let label = names.acquire("feed", |name| format!("service={name}"));
    /// assert_eq!(*label, "service=feed");
    /// assert_eq!(label.name(), "feed");
    /// ```
    pub fn acquire(&self, service: &str, create: impl FnOnce(&Arc<str>) -> T) -> ServiceEntry<T> {
        let mut entries = self.lock();
        if let Some(shared) = entries.get_mut(service) {
            shared.handles = shared.handles.saturating_add(1);
            return ServiceEntry {
                name: Arc::clone(&shared.name),
                value: Arc::clone(&shared.value),
            };
        }
        let name: Arc<str> = Arc::from(service);
        let value = Arc::new(create(&name));
        entries.insert(
            Arc::clone(&name),
            Shared {
                name: Arc::clone(&name),
                value: Arc::clone(&value),
                handles: 1,
            },
        );
        ServiceEntry { name, value }
    }

    /// Releases one live handle of its name; returns the entry, now removed
    /// from the map, if that was the last one.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::ServiceMap;
    ///
    /// let map: ServiceMap<u8> = ServiceMap::new();
    /// let feed = map.acquire("feed", |_| 7);
    /// assert_eq!(map.release(feed).as_deref(), Some(&7));
    /// assert!(map.is_empty());
    /// ```
    pub fn release(&self, entry: ServiceEntry<T>) -> Option<Arc<T>> {
        let ServiceEntry { name, value } = entry;
        let mut entries = self.lock();
        let Entry::Occupied(mut shared) = entries.entry(name) else {
            return None;
        };
        // A handle of an entry that was already released and recreated is not
        // one of the new entry's handles.
        if !Arc::ptr_eq(&shared.get().value, &value) {
            return None;
        }
        drop(value);
        shared.get_mut().handles = shared.get().handles.saturating_sub(1);
        if shared.get().handles > 0 {
            return None;
        }
        Some(shared.remove().value)
    }

    /// The number of names with an entry.
    ///
    /// # Examples
    ///
    /// ```
    /// let map: supervisor_metrics::ServiceMap<u8> = supervisor_metrics::ServiceMap::new();
    /// let _a = map.acquire("a", |_| 0);
    /// assert_eq!(map.len(), 1);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no name has an entry.
    ///
    /// # Examples
    ///
    /// ```
    /// let map: supervisor_metrics::ServiceMap<u8> = supervisor_metrics::ServiceMap::new();
    /// assert!(map.is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    // A panic inside `create` poisons the lock; the map is never left
    // half-updated (the entry is inserted after `create` returns), so it stays
    // usable.
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Shared<T>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Default for ServiceMap<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for ServiceMap<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceMap")
            .field("services", &self.len())
            .finish()
    }
}

/// One live handle of a [`ServiceMap`] entry: the interned name and the
/// shared value (it dereferences to the value). Give it back with
/// [`ServiceMap::release`].
///
/// # Examples
///
/// ```
/// use supervisor_metrics::ServiceMap;
///
/// let map: ServiceMap<u32> = ServiceMap::new();
/// let entry = map.acquire("db", |_| 3);
/// assert_eq!((entry.name(), *entry), ("db", 3));
/// ```
pub struct ServiceEntry<T> {
    name: Arc<str>,
    value: Arc<T>,
}

impl<T> ServiceEntry<T> {
    /// The service's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<T> Deref for ServiceEntry<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for ServiceEntry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceEntry")
            .field("name", &self.name)
            .field("value", &self.value)
            .finish()
    }
}
