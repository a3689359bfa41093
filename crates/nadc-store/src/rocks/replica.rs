//! The store as a replica of the replicated log (`mod.rs` delegates
//! here): reads applied with the log's position, that position read back,
//! and a copy of the store for another replica to start from.

use super::*;

impl RocksStore {
    pub(super) fn replica_append_logged(
        &self,
        force: &ForceId,
        mut reads: Vec<NewRead>,
        at: &crate::LogPosition,
    ) -> Result<Vec<Appended>, StoreError> {
        let prepared = PreparedReads::new(force, &mut reads)?;
        drop(reads);
        Ok(self
            .submit_job(Job {
                force: Some(force.clone()),
                reads: prepared,
                log_position: Some(at.clone()),
                ..Job::default()
            })?
            .appended)
    }

    pub(super) fn replica_find_reads(
        &self,
        ids: &[(u32, ForceId, String)],
    ) -> Result<Vec<Option<ReadRef>>, StoreError> {
        let cf = self.cf(CF_DEDUP)?;
        let keys: Vec<Vec<u8>> = ids
            .iter()
            .map(|(day, force, id)| keys::dedup_key(*day, force, id))
            .collect();
        ids.iter()
            .zip(self.db.batched_multi_get_cf(cf, keys.iter(), false))
            .map(|((day, _, _), found)| {
                let Some(v) = found.map_err(engine)? else {
                    return Ok(None);
                };
                let seq = keys::be_u64(&v).ok_or_else(|| StoreError::Corrupt {
                    what: "dedup",
                    detail: "a value not 8 bytes".into(),
                })?;
                Ok(Some(ReadRef { day: *day, seq }))
            })
            .collect()
    }

    pub(super) fn replica_log_alerts(
        &self,
        alerts: Vec<Alert>,
        at: &crate::LogPosition,
    ) -> Result<Vec<u64>, StoreError> {
        Ok(self
            .submit_job(Job {
                alerts,
                log_position: Some(at.clone()),
                ..Job::default()
            })?
            .alert_positions)
    }

    pub(super) fn replica_set_log_position(
        &self,
        at: &crate::LogPosition,
    ) -> Result<(), StoreError> {
        self.submit_job(Job {
            log_position: Some(at.clone()),
            ..Job::default()
        })
        .map(drop)
    }

    pub(super) fn replica_log_position(
        &self,
        stream: &str,
    ) -> Result<Option<crate::LogPosition>, StoreError> {
        let meta = self.cf(CF_META)?;
        let Some(v) = self
            .db
            .get_pinned_cf(meta, keys::log_position_key(stream))
            .map_err(engine)?
        else {
            return Ok(None);
        };
        let corrupt = |what: &str| StoreError::Corrupt {
            what: "meta",
            detail: format!("the {what} of log stream {stream:?}"),
        };
        let seq = keys::be_u64(&v).ok_or_else(|| corrupt("position (not 8 bytes)"))?;
        let scope = match self
            .db
            .get_pinned_cf(meta, keys::log_scope_key(stream))
            .map_err(engine)?
        {
            Some(v) => String::from_utf8(v.to_vec()).map_err(|_| corrupt("scope (not UTF-8)"))?,
            None => return Err(corrupt("scope (missing beside its position)")),
        };
        Ok(Some(crate::LogPosition {
            stream: stream.to_string(),
            seq,
            scope,
        }))
    }

    pub(super) fn replica_copy(&self, dir: &Path) -> Result<BTreeMap<ForceId, u64>, StoreError> {
        // Hard links to the live files (and the memtables flushed first):
        // one instant of every column family.
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(dir))
            .map_err(engine)?;
        // What this node served is its own: the copy's audit chain and
        // registers are dropped (new files; the live ones are untouched).
        let mut opts = Options::default();
        opts.create_missing_column_families(true);
        let names = DB::list_cf(&opts, dir).map_err(engine)?;
        // Opened with the store's own options (the VRM dictionary's merge
        // operator among them), compacting nothing.
        let cache = rocksdb::Cache::new_lru_cache(8 << 20);
        let cfs = names.iter().map(|n| {
            let mut o = cf_options(n, &cache);
            o.set_disable_auto_compactions(true);
            ColumnFamilyDescriptor::new(n, o)
        });
        let mut copy = DB::open_cf_descriptors(&opts, dir, cfs).map_err(engine)?;
        for own in [CF_AUDIT, CF_REGISTERS] {
            if names.iter().any(|n| n == own) {
                copy.drop_cf(own).map_err(engine)?;
                copy.create_cf(own, &Options::default()).map_err(engine)?;
            }
        }
        copy.flush_wal(true).map_err(engine)?;
        // What the copy holds, from the copy (the live store moves on).
        let counts = writer::force_counts(&copy)?;
        Ok(counts)
    }
}
