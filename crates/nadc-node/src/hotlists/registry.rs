//! The hotlist registry: every list and entry, the matcher built from them,
//! and the one function that changes them ([`HotlistRegistry::apply`]).
//!
//! Invariants:
//! - Every change goes through [`HotlistRegistry::apply`] (from
//!   [`crate::changes::State::apply`]): taken from a user by this node
//!   (embedded mode), or from the replicated log, where
//!   every replica applies the same changes in the same order between the
//!   same reads, so every replica matches each read against the same lists.
//! - Applying a change is a function of the store's lists alone, and
//!   applying it again leaves them as it did (a replica that stopped
//!   between a change and its log position applies it twice).
//! - A change is durable in the store before the matcher is swapped.

use std::sync::{Arc, Mutex, RwLock};

use nadc_core::hotlist::{Hotlist, HotlistEntry, HotlistId, HotlistMatcher};
use nadc_proto::log::Change;
use nadc_store::{Store, StoreError};

use crate::changes::Changed;
use crate::error::ServiceError;

/// Every list and entry, and the matcher built from them.
pub struct HotlistRegistry {
    store: Arc<dyn Store>,
    state: RwLock<Snapshot>,
    /// Serialises changes, so a reload never races another change.
    change: Mutex<()>,
    /// Held (shared) by each ingest from matching its reads against the
    /// lists to storing them ([`HotlistRegistry::ingesting`]), so a
    /// look-back can wait for every read matched against the lists before
    /// its entries were added to be stored ([`HotlistRegistry::settle`]).
    ingest: RwLock<()>,
}

#[derive(Clone)]
struct Snapshot {
    lists: Arc<Vec<(Hotlist, Vec<HotlistEntry>)>>,
    matcher: Arc<HotlistMatcher>,
}

impl Snapshot {
    fn of(lists: Vec<(Hotlist, Vec<HotlistEntry>)>) -> Self {
        Self {
            matcher: Arc::new(HotlistMatcher::new(lists.clone())),
            lists: Arc::new(lists),
        }
    }
}

impl HotlistRegistry {
    /// Loads every list from the store.
    pub fn load(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let state = Snapshot::of(store.hotlists()?);
        Ok(Self {
            store,
            state: RwLock::new(state),
            change: Mutex::new(()),
            ingest: RwLock::new(()),
        })
    }

    /// Held by an ingest from matching its reads against the lists until
    /// they are stored.
    pub fn ingesting(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.ingest.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once every ingest that was matching or storing reads when it
    /// was called has stored them. Blocking.
    pub fn settle(&self) {
        drop(self.ingest.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// The matcher for reads ingested from now on.
    pub fn matcher(&self) -> Arc<HotlistMatcher> {
        self.snapshot().matcher
    }

    /// Every list with its entries.
    pub fn lists(&self) -> Arc<Vec<(Hotlist, Vec<HotlistEntry>)>> {
        self.snapshot().lists
    }

    fn snapshot(&self) -> Snapshot {
        match self.state.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// One list with its entries.
    pub fn get(&self, id: &HotlistId) -> Option<(Hotlist, Vec<HotlistEntry>)> {
        self.lists().iter().find(|(l, _)| l.id == *id).cloned()
    }

    /// Applies `change` to the store's lists and swaps the matcher: what it
    /// did, or why it was refused (a list that exists already or no longer
    /// does, rules the list refuses), which changes nothing. The outer
    /// error is the store failing. Blocking.
    pub fn apply(&self, change: &Change) -> Result<Result<Changed, ServiceError>, StoreError> {
        let _guard = self.change.lock().unwrap_or_else(|e| e.into_inner());
        let store = self.store.as_ref();
        let lists = store.hotlists()?;
        let find = |id: &HotlistId| lists.iter().find(|(l, _)| l.id == *id).cloned();
        let missing = |id: &HotlistId| Ok(Err(ServiceError::not_found(format!("no list {id}"))));
        let done = match change {
            Change::CreateList(list) => {
                if find(&list.id).is_some() {
                    return Ok(Err(ServiceError::exists(format!(
                        "list {} already exists",
                        list.id
                    ))));
                }
                store.put_hotlist(list)?;
                Changed::List(list.clone(), Vec::new())
            }
            Change::SetRules { list, rules } => {
                let Some((mut l, entries)) = find(list) else {
                    return missing(list);
                };
                l.rules = rules.clone();
                if let Err(e) = l.validate() {
                    return Ok(Err(ServiceError::invalid(e.to_string())));
                }
                store.put_hotlist(&l)?;
                Changed::List(l, entries)
            }
            Change::DeleteList(id) => {
                let Some((_, entries)) = find(id) else {
                    return missing(id);
                };
                store.delete_hotlist(id)?;
                Changed::Entries(entries.len() as u64)
            }
            Change::PutEntries { list, entries } => {
                if find(list).is_none() {
                    return missing(list);
                }
                store.put_hotlist_entries(list, entries)?;
                Changed::Entries(entries.len() as u64)
            }
            Change::RemoveEntries { list, vrms } => {
                if find(list).is_none() {
                    return missing(list);
                }
                Changed::Entries(store.remove_hotlist_entries(list, vrms)? as u64)
            }
            other => {
                return Ok(Err(ServiceError::internal(format!(
                    "not a change to the lists: {other:?}"
                ))));
            }
        };
        let snapshot = Snapshot::of(store.hotlists()?);
        match self.state.write() {
            Ok(mut s) => *s = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
        Ok(Ok(done))
    }
}
