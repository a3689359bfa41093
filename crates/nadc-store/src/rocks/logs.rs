//! The node's records besides reads: the alert log and verification
//! states, the audit chain, authorisations, legal holds, registries,
//! hotlists and the camera registry (`mod.rs` delegates here).

use super::*;

impl RocksStore {
    pub(super) fn logged_log_alerts(&self, alerts: Vec<Alert>) -> Result<Vec<u64>, StoreError> {
        if alerts.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .submit(None, PreparedReads::default(), alerts, Vec::new())?
            .alert_positions)
    }

    pub(super) fn logged_alerts(
        &self,
        after: u64,
        visit: &mut dyn FnMut(u64, Alert) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let cf = self.cf(CF_ALERTS)?;
        let mut it = self.db.raw_iterator_cf(cf);
        it.seek(after.saturating_add(1).to_be_bytes());
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let pos = keys::be_u64(k).ok_or_else(|| StoreError::Corrupt {
                what: "alerts",
                detail: "key is not 8 bytes".into(),
            })?;
            if visit(pos, record::decode("alerts", v)?).is_break() {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(engine)
    }

    pub(super) fn logged_append_audit(
        &self,
        entries: Vec<AuditEntry>,
    ) -> Result<Vec<ChainedEntry>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .submit(None, PreparedReads::default(), Vec::new(), entries)?
            .audit)
    }

    pub(super) fn logged_append_audit_registered(
        &self,
        entry: AuditEntry,
        space: &str,
        entries: crate::RegistryEntries,
    ) -> Result<ChainedEntry, StoreError> {
        let registry = entries
            .into_iter()
            .map(|(k, v)| (registry_key(space, &k), v))
            .collect();
        self.submit_job(Job {
            audit: vec![entry],
            registry,
            ..Job::default()
        })?
        .audit
        .pop()
        .ok_or_else(|| StoreError::Engine("the audit entry was not chained".into()))
    }

    pub(super) fn logged_audit(
        &self,
        from: u64,
        visit: &mut dyn FnMut(ChainedEntry) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_AUDIT)?);
        it.seek(from.to_be_bytes());
        while it.valid() {
            let Some(v) = it.value() else { break };
            if visit(record::decode("audit", v)?).is_break() {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(engine)
    }

    pub(super) fn logged_put_authorisation(&self, a: &Authorisation) -> Result<bool, StoreError> {
        let cf = self.cf(CF_AUTHORISATIONS)?;
        let key = keys::authorisation_key(&a.force, &a.id);
        // One writer of authorisations at a time, so the check holds.
        let _guard = self
            .authorisation_lock
            .lock()
            .map_err(|_| StoreError::Engine("authorisation lock poisoned".into()))?;
        if self.db.get_pinned_cf(cf, &key).map_err(engine)?.is_some() {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, key, record::encode_authorisation(a)?);
        self.write_synced(batch)?;
        Ok(true)
    }

    pub(super) fn logged_revoke_authorisation(
        &self,
        force: &ForceId,
        id: &str,
        revocation: &Revocation,
    ) -> Result<Option<(Authorisation, bool)>, StoreError> {
        let cf = self.cf(CF_AUTHORISATIONS)?;
        let key = keys::authorisation_key(force, id);
        let _guard = self
            .authorisation_lock
            .lock()
            .map_err(|_| StoreError::Engine("authorisation lock poisoned".into()))?;
        let Some(v) = self.db.get_pinned_cf(cf, &key).map_err(engine)? else {
            return Ok(None);
        };
        let mut a = record::decode_authorisation(&v)?;
        if a.revoked.is_some() {
            return Ok(Some((a, false)));
        }
        a.revoked = Some(revocation.clone());
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, key, record::encode_authorisation(&a)?);
        self.write_synced(batch)?;
        Ok(Some((a, true)))
    }

    pub(super) fn logged_authorisations(&self) -> Result<Vec<Authorisation>, StoreError> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_AUTHORISATIONS)?);
        it.seek_to_first();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let a = record::decode_authorisation(v)?;
            if keys::decode_authorisation_key(k) != Some((a.force.as_str(), a.id.as_str())) {
                return Err(StoreError::Corrupt {
                    what: "authorisations",
                    detail: format!("authorisation {:?} of {} under another key", a.id, a.force),
                });
            }
            out.push(a);
            it.next();
        }
        it.status().map_err(engine)?;
        Ok(out)
    }

    pub(super) fn logged_hold(
        &self,
        case: &crate::CaseId,
        reads: &[ReadRef],
    ) -> Result<u64, StoreError> {
        let cf = self.cf(CF_HOLDS)?;
        let keys: Vec<Vec<u8>> = reads
            .iter()
            .map(|r| keys::hold_key(r.day, r.seq, &case.owner, &case.case_ref))
            .collect();
        let mut fresh = 0;
        let mut batch = WriteBatch::default();
        for (k, found) in keys
            .iter()
            .zip(self.db.batched_multi_get_cf(cf, keys.iter(), false))
        {
            if found.map_err(engine)?.is_none() {
                fresh += 1;
                batch.put_cf(cf, k, []);
            }
        }
        self.write_synced(batch)?;
        Ok(fresh)
    }

    pub(super) fn logged_release(&self, case: &crate::CaseId) -> Result<u64, StoreError> {
        let cf = self.cf(CF_HOLDS)?;
        let mut it = self.db.raw_iterator_cf(cf);
        it.seek_to_first();
        let mut batch = WriteBatch::default();
        let mut n = 0;
        while it.valid() {
            if let Some(k) = it.key()
                && keys::decode_hold_key(k).is_some_and(|(_, _, owner, c)| {
                    owner == Some(case.owner.as_str()) && c == case.case_ref
                })
            {
                batch.delete_cf(cf, k);
                n += 1;
            }
            it.next();
        }
        it.status().map_err(engine)?;
        drop(it);
        self.write_synced(batch)?;
        Ok(n)
    }

    pub(super) fn logged_holds(
        &self,
    ) -> Result<BTreeMap<ReadRef, Vec<Option<crate::CaseId>>>, StoreError> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_HOLDS)?);
        it.seek_to_first();
        let mut out: BTreeMap<ReadRef, Vec<Option<crate::CaseId>>> = BTreeMap::new();
        while it.valid() {
            if let Some(k) = it.key() {
                let corrupt = || StoreError::Corrupt {
                    what: "holds",
                    detail: "undecodable key".into(),
                };
                let (day, seq, owner, case) = keys::decode_hold_key(k).ok_or_else(corrupt)?;
                let case = match owner {
                    Some(o) => Some(crate::CaseId {
                        owner: ForceId::new(o).map_err(|_| corrupt())?,
                        case_ref: case.to_string(),
                    }),
                    None => None,
                };
                out.entry(ReadRef { day, seq }).or_default().push(case);
            }
            it.next();
        }
        it.status().map_err(engine)?;
        Ok(out)
    }

    pub(super) fn logged_put_registry(
        &self,
        space: &str,
        entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), StoreError> {
        let cf = self.cf(CF_REGISTERS)?;
        let mut batch = WriteBatch::default();
        for (k, v) in entries {
            let key = registry_key(space, &k);
            match v {
                Some(v) => batch.put_cf(cf, key, v),
                None => batch.delete_cf(cf, key),
            }
        }
        self.write_synced(batch)
    }

    pub(super) fn logged_registry(
        &self,
        space: &str,
        prefix: &[u8],
        visit: &mut crate::RegistryVisit<'_>,
    ) -> Result<(), StoreError> {
        let mut full = space.as_bytes().to_vec();
        full.push(keys::SEP);
        let skip = full.len();
        full.extend_from_slice(prefix);
        let mut ro = ReadOptions::default();
        if let Some(end) = keys::prefix_end(&full) {
            ro.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_REGISTERS)?, ro);
        it.seek(&full);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if visit(&k[skip..], v).is_break() {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(engine)
    }

    pub(super) fn logged_set_alert_state(
        &self,
        position: u64,
        state: &AlertState,
        audit: AuditEntry,
        at: Option<&crate::LogPosition>,
    ) -> Result<(bool, ChainedEntry), StoreError> {
        // On the writer thread, which alone deletes alerts (expiry): the
        // alert seen logged there stays until the state is written.
        let mut done = self.submit_job(Job {
            audit: vec![audit],
            alert_state: Some((position, state.clone())),
            log_position: at.cloned(),
            ..Job::default()
        })?;
        let entry = done
            .audit
            .pop()
            .ok_or_else(|| StoreError::Engine("the audit entry was not chained".into()))?;
        Ok((done.state_set, entry))
    }

    pub(super) fn logged_alerts_of_read(
        &self,
        read: ReadRef,
    ) -> Result<Vec<(u64, Alert)>, StoreError> {
        let (by_read, alerts) = (self.cf(CF_ALERT_READS)?, self.cf(CF_ALERTS)?);
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(
            keys::alert_read_key(read.day, read.seq.saturating_add(1), 0).to_vec(),
        );
        let mut it = self.db.raw_iterator_cf_opt(by_read, ro);
        it.seek(keys::alert_read_key(read.day, read.seq, 0));
        let mut positions = Vec::new();
        while let Some(k) = it.key() {
            let (_, _, position) =
                keys::decode_alert_read_key(k).ok_or_else(|| StoreError::Corrupt {
                    what: "alert_reads",
                    detail: "undecodable key".into(),
                })?;
            positions.push(position);
            it.next();
        }
        it.status().map_err(engine)?;
        let mut out = Vec::with_capacity(positions.len());
        for p in positions {
            if let Some(v) = self
                .db
                .get_pinned_cf(alerts, p.to_be_bytes())
                .map_err(engine)?
            {
                out.push((p, record::decode("alerts", &v)?));
            }
        }
        Ok(out)
    }

    pub(super) fn logged_alert_states(
        &self,
        positions: &[u64],
    ) -> Result<Vec<Option<AlertState>>, StoreError> {
        let cf = self.cf(CF_ALERT_STATE)?;
        let keys: Vec<[u8; 8]> = positions.iter().map(|p| p.to_be_bytes()).collect();
        self.db
            .batched_multi_get_cf(cf, keys.iter(), false)
            .into_iter()
            .map(|v| match v.map_err(engine)? {
                Some(bytes) => record::decode_alert_state(&bytes).map(Some),
                None => Ok(None),
            })
            .collect()
    }

    pub(super) fn logged_put_hotlist(&self, list: &Hotlist) -> Result<(), StoreError> {
        let cf = self.cf(CF_HOTLISTS)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf,
            keys::hotlist_key(&list.id.owner, &list.id.name),
            record::encode("hotlist", list)?,
        );
        self.write_synced(batch)
    }

    pub(super) fn logged_delete_hotlist(&self, id: &HotlistId) -> Result<(), StoreError> {
        let cf = self.cf(CF_HOTLISTS)?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(cf, keys::hotlist_key(&id.owner, &id.name));
        let prefix = keys::hotlist_entries_prefix(&id.owner, &id.name);
        if let Some(end) = keys::prefix_end(&prefix) {
            batch.delete_range_cf(cf, prefix, end);
        }
        self.write_synced(batch)
    }

    pub(super) fn logged_put_hotlist_entries(
        &self,
        id: &HotlistId,
        entries: &[HotlistEntry],
    ) -> Result<(), StoreError> {
        let cf = self.cf(CF_HOTLISTS)?;
        let mut batch = WriteBatch::default();
        for e in entries {
            batch.put_cf(
                cf,
                keys::hotlist_entry_key(&id.owner, &id.name, &e.vrm),
                record::encode("hotlist entry", e)?,
            );
        }
        self.write_synced(batch)
    }

    pub(super) fn logged_remove_hotlist_entries(
        &self,
        id: &HotlistId,
        vrms: &[Vrm],
    ) -> Result<usize, StoreError> {
        let cf = self.cf(CF_HOTLISTS)?;
        let keys: Vec<Vec<u8>> = vrms
            .iter()
            .map(|v| keys::hotlist_entry_key(&id.owner, &id.name, v))
            .collect();
        let mut batch = WriteBatch::default();
        let mut existed = 0;
        for (k, found) in keys
            .iter()
            .zip(self.db.batched_multi_get_cf(cf, keys.iter(), false))
        {
            if found.map_err(engine)?.is_some() {
                existed += 1;
                batch.delete_cf(cf, k);
            }
        }
        self.write_synced(batch)?;
        Ok(existed)
    }

    pub(super) fn logged_hotlists(&self) -> Result<Vec<(Hotlist, Vec<HotlistEntry>)>, StoreError> {
        let cf = self.cf(CF_HOTLISTS)?;
        let mut lists: BTreeMap<(String, String), (Hotlist, Vec<HotlistEntry>)> = BTreeMap::new();
        let mut it = self.db.raw_iterator_cf(cf);
        it.seek([keys::HOTLIST_TAG]);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            match k.first() {
                Some(&keys::HOTLIST_TAG) => {
                    let list: Hotlist = record::decode_hotlist(v)?;
                    let key = (list.id.owner.as_str().to_string(), list.id.name.clone());
                    lists.insert(key, (list, Vec::new()));
                }
                Some(&keys::HOTLIST_ENTRY_TAG) => {
                    let (owner, name) =
                        keys::decode_hotlist_entry_key(k).ok_or_else(|| StoreError::Corrupt {
                            what: "hotlists",
                            detail: "undecodable entry key".into(),
                        })?;
                    let entry: HotlistEntry = record::decode("hotlist entries", v)?;
                    // Entries of a deleted list cannot exist (deleted in the
                    // same batch), so a missing list is corruption.
                    let (_, entries) = lists
                        .get_mut(&(owner.to_string(), name.to_string()))
                        .ok_or_else(|| StoreError::Corrupt {
                            what: "hotlists",
                            detail: format!("entry of unknown list {owner}/{name}"),
                        })?;
                    entries.push(entry);
                }
                _ => break,
            }
            it.next();
        }
        it.status().map_err(engine)?;
        Ok(lists.into_values().collect())
    }

    pub(super) fn logged_put_cameras(&self, cameras: &[Camera]) -> Result<(), StoreError> {
        let cf = self.cf(CF_CAMERAS)?;
        let mut batch = WriteBatch::default();
        for c in cameras {
            batch.put_cf(
                cf,
                keys::cameras_key(&c.force, &c.camera_id),
                record::encode_camera(c)?,
            );
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(engine)
    }

    pub(super) fn logged_cameras(
        &self,
        force: Option<&ForceId>,
    ) -> Result<Vec<Camera>, StoreError> {
        let cf = self.cf(CF_CAMERAS)?;
        let prefix = force.map(|f| {
            let mut p = f.as_str().as_bytes().to_vec();
            p.push(keys::SEP);
            p
        });
        let mut ro = ReadOptions::default();
        if let Some(end) = prefix.as_deref().and_then(keys::prefix_end) {
            ro.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_cf_opt(cf, ro);
        match &prefix {
            Some(p) => it.seek(p),
            None => it.seek_to_first(),
        }
        let mut out = Vec::new();
        while it.valid() {
            if let Some(v) = it.value() {
                out.push(record::decode_camera(v)?);
            }
            it.next();
        }
        it.status().map_err(engine)?;
        Ok(out)
    }
}
