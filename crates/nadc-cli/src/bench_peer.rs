//! The peer in `nadc bench search --postgis`: the same searches, with the
//! same inputs, asked of PostgreSQL + PostGIS loaded with the same reads by
//! `benches/peer/postgis.sh`, over its own client connection (TCP or a
//! Unix socket), so both figures are end to end from a client process.
//!
//! The SQL is what a competent PostGIS user would write against that
//! script's schema (`reads`: one row per read, `geog geography(Point)` with
//! GiST, btree on `(vrm, observed_at)` and `(force, camera_id,
//! observed_at)`, BRIN on time; `vrms`: the distinct VRMs with their
//! confusable skeleton, kept by a trigger, btree on the skeleton and on
//! it reversed): prepared statements, the circle as `ST_DWithin` on the
//! WGS84 spheroid (`geography`'s default, the geodesic nadc also measures),
//! time windows inclusive at
//! both ends as nadc's are. Every row is fetched and its main columns
//! decoded, as nadc's client decodes every row it gets.
//!
//! Asked as a lawful deployment would run it ([`Peer::search`] with
//! `audited`), each search also writes its audit row (who, purpose, case,
//! the query, the rows returned) into `search_audit` in the search's own
//! transaction, committed synchronously (the script runs PostgreSQL with
//! `synchronous_commit = on`) before its rows are handed back: nadc's
//! governed path writes its audit entry durably before a search's rows
//! leave the node.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use nadc_core::{Timestamp, Vrm};
use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::bench::{
    Answer, CONVOY_LIMIT, CONVOY_MIN_CAMERAS, CONVOY_MIN_COUNT, CONVOY_WINDOW_S, CompanionCount,
    Kind, Sample,
};

/// The columns each search returns.
const COLUMNS: &str = "force, read_id, vrm, vrm_raw, observed_at, camera_id, \
     ST_Y(geog::geometry) AS lat, ST_X(geog::geometry) AS lon, bearing, lane, confidence, \
     make, model, colour, country, patch_image_ref, overview_image_ref";

/// [`COLUMNS`] named with a prefix (`t_read_id`, `t_lat`, ...), for a
/// query that returns two reads in one row.
fn prefixed(prefix: &str) -> String {
    COLUMNS
        .split(',')
        .map(|c| {
            let c = c.trim();
            match c.split_once(" AS ") {
                Some((expr, name)) => format!("{expr} AS {prefix}{name}"),
                None => format!("{c} AS {prefix}{c}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A circle and window with parameters `$n..$n+4`: lon, lat, radius (m),
/// from, to.
fn area(n: usize) -> String {
    format!(
        "(ST_DWithin(geog, ST_SetSRID(ST_MakePoint(${}, ${}), 4326)::geography, ${}) \
         AND observed_at BETWEEN ${} AND ${})",
        n,
        n + 1,
        n + 2,
        n + 3,
        n + 4
    )
}

/// Fuzzy VRM search, as nadc's with its default confusable groups and one
/// edit: the reads of every VRM whose skeleton (`vrm_skeleton`: each
/// confusable character replaced by its group's first, what nadc's
/// `ConfusableGroups::skeleton` does) is within Levenshtein distance 1 of
/// the query's (`levenshtein_less_equal` from fuzzystrmatch). That is
/// nadc's whole test: an exact or confusable match has the same skeleton.
///
/// The candidates come from `vrms` by two index range scans: one edit
/// leaves either the skeleton's first half in place as a prefix, or its
/// second half as a suffix (an edit before the split leaves the suffix, one
/// at or after it the prefix), so every match has one or the other.
/// `x >= p AND x < p || '['` is "starts with p" for strings of A-Z and
/// 0-9 (`[` sorts after them byte-wise), in a form a generic plan can
/// still use an index for. Rows are ranked as nadc ranks them: exact,
/// then confusable, then one edit; then VRM and time.
fn fuzzy_sql() -> String {
    let skel = "vrm_skeleton($1)";
    let prefix = format!("left({skel}, length($1) / 2)");
    let suffix = format!("reverse(right({skel}, -(length($1) / 2)))");
    format!(
        "SELECT {COLUMNS} FROM reads WHERE vrm IN (\
           SELECT vrm FROM vrms \
           WHERE ((skel >= {prefix} AND skel < ({prefix} || '[')) \
               OR (reverse(skel) >= {suffix} AND reverse(skel) < ({suffix} || '['))) \
             AND levenshtein_less_equal(skel, {skel}, 1) <= 1) \
         ORDER BY vrm <> $1, vrm_skeleton(vrm) <> {skel}, vrm, observed_at, force, read_id"
    )
}

/// Convoy analysis, as nadc's (`nadc_query::convoy`): the target's reads
/// in the period (`t`, numbered in time order, their cameras numbered);
/// for each target read and each other VRM read at the same (force,
/// camera) within the window either side, inclusive, the closest such read
/// (`s`: nearest first, then the earlier); a companion's co-occurrences are
/// the target reads it has a sighting for, its cameras their distinct
/// cameras; filtered, ranked (co-occurrences, cameras, most first, then
/// VRM) and limited, with the total before the limit. One row per pair
/// returned: the companion, its counts, and both reads in full, as nadc
/// returns each companion with its supporting pairs (where two companion
/// reads are equally close, nadc takes the one it stored first, this the
/// lower (force, read id): the counts compared are the same either way).
/// The (force, camera, time) btree serves the self-join; no other index is
/// needed.
///
/// Parameters: target VRM, from, to, window (s), least co-occurrences,
/// least cameras, most companions.
fn convoy_sql() -> String {
    format!(
        "WITH t AS MATERIALIZED (\
           SELECT row_number() OVER (ORDER BY observed_at, force, read_id) AS i, \
                  dense_rank() OVER (ORDER BY force, camera_id) AS cam, \
                  force, read_id, camera_id, observed_at \
           FROM reads WHERE vrm = $1 AND observed_at BETWEEN $2 AND $3), \
         s AS MATERIALIZED (\
           SELECT DISTINCT ON (t.i, c.vrm) t.i, t.cam, c.vrm, c.force, c.read_id \
           FROM t JOIN reads c ON c.force = t.force AND c.camera_id = t.camera_id \
             AND c.observed_at BETWEEN t.observed_at - $4::float8 * interval '1 second' \
                                   AND t.observed_at + $4::float8 * interval '1 second' \
           WHERE c.vrm <> $1 \
           ORDER BY t.i, c.vrm, abs(extract(epoch FROM c.observed_at - t.observed_at)), \
                    c.observed_at, c.force, c.read_id), \
         ranked AS (\
           SELECT vrm, count(*) AS co_occurrences, count(DISTINCT cam) AS cameras, \
                  count(*) OVER () AS total \
           FROM s GROUP BY vrm \
           HAVING count(*) >= $5::int8 AND count(DISTINCT cam) >= $6::int8 \
           ORDER BY co_occurrences DESC, cameras DESC, vrm LIMIT $7::int8) \
         SELECT k.vrm AS companion, k.co_occurrences, k.cameras, k.total, tr.*, cr.* \
         FROM ranked k JOIN s ON s.vrm = k.vrm JOIN t ON t.i = s.i \
         CROSS JOIN LATERAL (SELECT {target} FROM reads r \
           WHERE r.force = t.force AND r.read_id = t.read_id) tr \
         CROSS JOIN LATERAL (SELECT {companion} FROM reads r \
           WHERE r.force = s.force AND r.read_id = s.read_id) cr \
         ORDER BY k.co_occurrences DESC, k.cameras DESC, k.vrm, s.i",
        target = prefixed("t_"),
        companion = prefixed("c_"),
    )
}

/// The SQL of a search kind.
pub fn sql(kind: Kind) -> String {
    match kind {
        Kind::Vrm => {
            format!(
                "SELECT {COLUMNS} FROM reads WHERE vrm = $1 ORDER BY observed_at, force, read_id"
            )
        }
        Kind::Fuzzy => fuzzy_sql(),
        Kind::Geo1km1h | Kind::Geo5km24h => format!(
            "SELECT {COLUMNS} FROM reads WHERE {} ORDER BY observed_at, force, read_id",
            area(1)
        ),
        Kind::GeoTwoAreaAll => format!(
            "SELECT {COLUMNS} FROM reads WHERE ({a} OR {b}) AND vrm IN \
             (SELECT vrm FROM reads WHERE {a} INTERSECT SELECT vrm FROM reads WHERE {b}) \
             ORDER BY observed_at, force, read_id",
            a = area(1),
            b = area(6)
        ),
        Kind::Vehicle => format!(
            "SELECT {COLUMNS} FROM reads WHERE {} \
             AND lower(trim(make)) = lower(trim($6)) \
             AND ($7::text IS NULL OR lower(trim(colour)) = lower(trim($7))) \
             ORDER BY observed_at, force, read_id",
            area(1)
        ),
        Kind::Convoy => convoy_sql(),
        // Refused before a peer is connected (`Kind::has_sql_peer`).
        Kind::HotspotsVrm
        | Kind::HotspotsTraffic
        | Kind::Alibi
        | Kind::Profile
        | Kind::Network
        | Kind::Pattern
        | Kind::Sites
        | Kind::Results
        | Kind::Transparency
        | Kind::CameraHealth
        | Kind::Retrospective => String::new(),
    }
}

/// A pair row of the convoy SQL as far as it is compared: the companion's
/// VRM, its co-occurrences and cameras, and the companions in all before
/// the limit.
type PairRow<'a> = (&'a str, i64, i64, i64);

/// A convoy's answer from its pair rows (a companion's pairs together,
/// companions in rank order): one companion per run of pairs.
fn convoy_answer(pairs: &[PairRow<'_>]) -> Answer {
    let mut companions: Vec<CompanionCount> = Vec::new();
    for &(vrm, co_occurrences, cameras, _) in pairs {
        if companions.last().is_some_and(|c| c.vrm == vrm) {
            continue;
        }
        companions.push(CompanionCount {
            vrm: vrm.to_string(),
            co_occurrences: co_occurrences as u64,
            cameras: cameras as u64,
        });
    }
    Answer {
        rows: companions.len(),
        companions,
        total: pairs.first().map_or(0, |p| p.3 as u64),
        pairs: pairs.len() as u64,
        ..Default::default()
    }
}

/// Decodes what a caller would use of a read in `row` (its columns named
/// with `prefix`, see [`prefixed`]).
fn decode_read(row: &Row, prefix: &str) -> anyhow::Result<()> {
    let col = |name: &str| format!("{prefix}{name}");
    let _: (&str, &str, SystemTime, f64, f64) = (
        row.try_get(col("read_id").as_str())?,
        row.try_get(col("vrm").as_str())?,
        row.try_get(col("observed_at").as_str())?,
        row.try_get(col("lat").as_str())?,
        row.try_get(col("lon").as_str())?,
    );
    Ok(())
}

/// A connection with the search's statement prepared.
pub struct Peer {
    client: Client,
    statement: Statement,
    /// The insert of a search's audit row.
    audit: Statement,
    kind: Kind,
    /// The connection's task; ends when the client is dropped.
    _connection: tokio::task::JoinHandle<()>,
}

fn time(t: Timestamp) -> SystemTime {
    let ms = t.millis();
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

impl Peer {
    /// Connects (a libpq-style connection string, e.g. `host=/tmp/sock
    /// port=55433 user=postgres dbname=nadc`) and prepares `kind`'s SQL.
    pub async fn connect(conn: &str, kind: Kind) -> anyhow::Result<Peer> {
        let sql = sql(kind);
        let (client, connection) = tokio_postgres::connect(conn, NoTls)
            .await
            .with_context(|| format!("connect to PostgreSQL ({conn})"))?;
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("PostgreSQL connection ended: {e}");
            }
        });
        let statement = client.prepare(&sql).await.with_context(|| {
            format!("prepare the {kind:?} SQL (is the schema of benches/peer/postgis.sh loaded?)")
        })?;
        client
            .batch_execute(AUDIT_TABLE)
            .await
            .context("create the audit table")?;
        let audit = client
            .prepare(AUDIT_INSERT)
            .await
            .context("prepare the audit insert")?;
        Ok(Peer {
            client,
            statement,
            audit,
            kind,
            _connection: task,
        })
    }

    /// Runs the search for these inputs (the same nadc was asked; `period`
    /// bounds a convoy's target reads) and returns its answer; if
    /// `audited`, in a transaction that writes its audit row and commits
    /// before the answer is returned.
    pub async fn search(
        &self,
        s: &Sample,
        other: &Sample,
        period: (Timestamp, Timestamp),
        audited: bool,
    ) -> anyhow::Result<Answer> {
        if !audited {
            return Ok(self.ask(s, other, period).await?.0);
        }
        self.client.batch_execute("BEGIN").await?;
        match self.ask(s, other, period).await {
            Ok((answer, returned)) => {
                let query = serde_json::json!({
                    "kind": format!("{:?}", self.kind),
                    "vrm": s.vrm,
                    "lat": s.lat,
                    "lon": s.lon,
                    "at": s.at.to_string(),
                })
                .to_string();
                self.client
                    .execute(
                        &self.audit,
                        &[
                            &"bench",
                            &"serious crime",
                            &"OP-BENCH",
                            &query,
                            &(returned as i64),
                        ],
                    )
                    .await?;
                self.client.batch_execute("COMMIT").await?;
                Ok(answer)
            }
            Err(e) => {
                let _ = self.client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    /// The search itself: its answer and how many rows it returned.
    async fn ask(
        &self,
        s: &Sample,
        other: &Sample,
        period: (Timestamp, Timestamp),
    ) -> anyhow::Result<(Answer, usize)> {
        const H: i64 = 3_600_000;
        let window = |x: &Sample, before: i64, after: i64| {
            (
                time(x.at.plus_millis(-before)),
                time(x.at.plus_millis(after)),
            )
        };
        let rows: Vec<Row> = match self.kind {
            Kind::Vrm | Kind::Fuzzy => {
                let vrm = Vrm::normalise(&s.vrm)?.as_str().to_string();
                self.client.query(&self.statement, &[&vrm]).await?
            }
            Kind::Geo1km1h | Kind::Geo5km24h => {
                let (radius, half) = if self.kind == Kind::Geo1km1h {
                    (1_000.0f64, H / 2)
                } else {
                    (5_000.0, 12 * H)
                };
                let (from, to) = window(s, half, half);
                self.client
                    .query(&self.statement, &[&s.lon, &s.lat, &radius, &from, &to])
                    .await?
            }
            Kind::GeoTwoAreaAll => {
                let r = 1_000.0f64;
                let (f1, t1) = window(s, H / 2, H / 2);
                let (f2, t2) = window(other, H / 2, H / 2);
                self.client
                    .query(
                        &self.statement,
                        &[
                            &s.lon, &s.lat, &r, &f1, &t1, &other.lon, &other.lat, &r, &f2, &t2,
                        ],
                    )
                    .await?
            }
            Kind::Vehicle => {
                let r = 5_000.0f64;
                let (from, to) = window(s, H, H);
                let make = s.make.clone().unwrap_or_else(|| "Ford".into());
                self.client
                    .query(
                        &self.statement,
                        &[&s.lon, &s.lat, &r, &from, &to, &make, &s.colour],
                    )
                    .await?
            }
            Kind::Convoy => {
                let vrm = Vrm::normalise(&s.vrm)?.as_str().to_string();
                let rows = self
                    .client
                    .query(
                        &self.statement,
                        &[
                            &vrm,
                            &time(period.0),
                            &time(period.1),
                            &f64::from(CONVOY_WINDOW_S),
                            &i64::from(CONVOY_MIN_COUNT),
                            &i64::from(CONVOY_MIN_CAMERAS),
                            &i64::from(CONVOY_LIMIT),
                        ],
                    )
                    .await?;
                let mut pairs: Vec<PairRow> = Vec::with_capacity(rows.len());
                for row in &rows {
                    decode_read(row, "t_")?;
                    decode_read(row, "c_")?;
                    pairs.push((
                        row.try_get("companion")?,
                        row.try_get("co_occurrences")?,
                        row.try_get("cameras")?,
                        row.try_get("total")?,
                    ));
                }
                return Ok((convoy_answer(&pairs), rows.len()));
            }
            Kind::HotspotsVrm
            | Kind::HotspotsTraffic
            | Kind::Alibi
            | Kind::Profile
            | Kind::Network
            | Kind::Pattern
            | Kind::Sites
            | Kind::Results
            | Kind::Transparency
            | Kind::CameraHealth
            | Kind::Retrospective => {
                anyhow::bail!("{:?} has no PostGIS counterpart", self.kind)
            }
        };
        // Decode what a caller would use of every row.
        let mut vrms = Vec::with_capacity(rows.len());
        for row in &rows {
            decode_read(row, "")?;
            vrms.push(row.try_get::<_, &str>("vrm")?);
        }
        let returned = vrms.len();
        Ok((Answer::of_reads(self.kind, vrms.into_iter()), returned))
    }
}

/// The audit table of the audited peer: one row per search.
const AUDIT_TABLE: &str = "CREATE TABLE IF NOT EXISTS search_audit (
    seq bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    principal text NOT NULL,
    purpose text NOT NULL,
    case_ref text NOT NULL,
    query text NOT NULL,
    returned bigint NOT NULL
)";

/// A search's audit row.
const AUDIT_INSERT: &str = "INSERT INTO search_audit (principal, purpose, case_ref, query, returned) \
     VALUES ($1, $2, $3, $4, $5)";

#[cfg(test)]
mod tests {
    use nadc_core::vrm_match::{ConfusableGroups, edit_neighbours};

    use super::{COLUMNS, convoy_answer, prefixed};

    #[test]
    fn prefixed_columns_name_every_column_once() {
        let p = prefixed("t_");
        assert_eq!(p.split(", ").count(), COLUMNS.split(',').count());
        assert!(p.starts_with("force AS t_force, read_id AS t_read_id, "));
        assert!(p.contains("ST_Y(geog::geometry) AS t_lat, ST_X(geog::geometry) AS t_lon"));
        assert!(p.ends_with("overview_image_ref AS t_overview_image_ref"));
    }

    #[test]
    fn convoy_pairs_make_one_companion_per_run() {
        let a = convoy_answer(&[
            ("XY11ABC", 3, 2, 4),
            ("XY11ABC", 3, 2, 4),
            ("XY11ABC", 3, 2, 4),
            ("XY22ABC", 2, 1, 4),
            ("XY22ABC", 2, 1, 4),
        ]);
        assert_eq!(a.rows, 2);
        assert_eq!(a.total, 4);
        assert_eq!(a.pairs, 5);
        let got: Vec<_> = a
            .companions
            .iter()
            .map(|c| (c.vrm.as_str(), c.co_occurrences, c.cameras))
            .collect();
        assert_eq!(got, [("XY11ABC", 3, 2), ("XY22ABC", 2, 1)]);
        let none = convoy_answer(&[]);
        assert_eq!((none.rows, none.total, none.pairs), (0, 0, 0));
    }

    /// The fuzzy SQL's index ranges find every skeleton within one edit of
    /// the query's: each keeps the query's first `len / 2` characters as a
    /// prefix or the rest as a suffix (the split `left(s, length / 2)` and
    /// `right(s, -(length / 2))`).
    #[test]
    fn one_edit_keeps_the_first_half_or_the_second() {
        let groups = ConfusableGroups::default();
        let alphabet = groups.skeleton_alphabet();
        for vrm in [
            "AB12CDE",
            "A1",
            "X",
            "K8",
            "WM56RBV",
            "ABC123",
            "H1ZZZ",
            "Q123456789ABCDE",
        ] {
            let s = groups.skeleton(vrm);
            let (first, second) = s.split_at(s.len() / 2);
            for n in edit_neighbours(&s, &alphabet) {
                assert!(
                    n.starts_with(first) || n.ends_with(second),
                    "{n} (one edit from {s}) keeps neither {first}… nor …{second}"
                );
            }
        }
    }

    /// `vrm_skeleton` in benches/peer/postgis.sh maps each confusable
    /// character to its group's first, as nadc's default groups do: every
    /// character nadc maps, and nothing else.
    #[test]
    fn the_sql_skeleton_is_nadcs() {
        let script = include_str!("../../../benches/peer/postgis.sh");
        let line = script
            .lines()
            .find(|l| l.contains("translate(v, '"))
            .expect("postgis.sh defines vrm_skeleton with translate()");
        let quoted: Vec<&str> = line.split('\'').skip(1).step_by(2).collect();
        let (from, to) = (quoted[0], quoted[1]);
        assert_eq!(from.len(), to.len());
        let groups = ConfusableGroups::default();
        let mapped: String = (b'0'..=b'Z')
            .filter(|c| c.is_ascii_alphanumeric() && groups.canon(*c) != *c)
            .map(char::from)
            .collect();
        let mut from_sorted: Vec<u8> = from.bytes().collect();
        from_sorted.sort_unstable();
        assert_eq!(String::from_utf8(from_sorted).unwrap(), mapped);
        for (f, t) in from.bytes().zip(to.bytes()) {
            assert_eq!(
                groups.canon(f),
                t,
                "{} maps to {}",
                char::from(f),
                char::from(t)
            );
        }
    }
}
