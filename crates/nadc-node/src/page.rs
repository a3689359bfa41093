//! Per-VRM summaries of the rows a search disclosed.
//!
//! A summary says where and when a vehicle was seen: it discloses as much
//! as the rows behind it. So a search's summaries are built from the rows
//! it sent (the page `offset..offset + limit`), never from every match:
//! what the audit entry and the case register count is all the answer
//! holds.

use std::collections::HashMap;

use nadc_proto::{self as proto, pb};

/// The summaries of the rows seen so far, by VRM.
#[derive(Debug, Default)]
pub struct PageVrms {
    /// Hashed while rows come (a lookup per row); ordered once at the end.
    by_vrm: HashMap<String, pb::VrmAreaSummary>,
}

impl PageVrms {
    /// Counts a row sent.
    pub fn add(&mut self, row: &pb::ReadRow) {
        let at = row.provenance.as_ref().and_then(|p| p.observed_at.as_ref());
        let ms = |t: Option<&prost_types::Timestamp>| {
            t.and_then(proto::from_pb_time).map(|t| t.millis())
        };
        // Looked up by reference: the VRM is copied once per VRM, not per row.
        let s = match self.by_vrm.get_mut(&row.vrm) {
            Some(s) => s,
            None => self
                .by_vrm
                .entry(row.vrm.clone())
                .or_insert_with(|| pb::VrmAreaSummary {
                    vrm: row.vrm.clone(),
                    first_seen: at.cloned(),
                    last_seen: at.cloned(),
                    r#match: row.r#match.clone(),
                    ..Default::default()
                }),
        };
        s.reads += 1;
        if ms(at) < ms(s.first_seen.as_ref()) {
            s.first_seen = at.cloned();
        }
        if ms(at) > ms(s.last_seen.as_ref()) {
            s.last_seen = at.cloned();
        }
        for a in &row.areas {
            if let Err(i) = s.areas.binary_search(a) {
                s.areas.insert(i, *a);
            }
        }
    }

    /// The summaries, ordered by VRM.
    pub fn into_pb(self) -> pb::VrmSummaries {
        pb::VrmSummaries {
            vrms: {
                let mut vrms: Vec<pb::VrmAreaSummary> = self.by_vrm.into_values().collect();
                vrms.sort_unstable_by(|a, b| a.vrm.cmp(&b.vrm));
                vrms
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(vrm: &str, ms: i64, areas: &[u32]) -> pb::ReadRow {
        pb::ReadRow {
            vrm: vrm.into(),
            areas: areas.to_vec(),
            provenance: Some(pb::Provenance {
                observed_at: Some(proto::to_pb_time(nadc_core::Timestamp::from_millis(ms))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn summaries_count_only_the_rows_added() {
        let mut p = PageVrms::default();
        for r in [
            row("B2", 50, &[1]),
            row("A1", 30, &[0]),
            row("B2", 10, &[0, 1]),
            row("B2", 70, &[]),
        ] {
            p.add(&r);
        }
        let got: Vec<(String, u64, Vec<u32>, i64, i64)> = p
            .into_pb()
            .vrms
            .into_iter()
            .map(|s| {
                let ms = |t: Option<prost_types::Timestamp>| {
                    proto::from_pb_time(&t.unwrap()).unwrap().millis()
                };
                (s.vrm, s.reads, s.areas, ms(s.first_seen), ms(s.last_seen))
            })
            .collect();
        assert_eq!(
            got,
            [
                ("A1".to_string(), 1, vec![0], 30, 30),
                ("B2".to_string(), 3, vec![0, 1], 10, 70),
            ]
        );
    }
}
