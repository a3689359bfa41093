//! The peer in `nadc bench search --postgis`: the same searches, with the
//! same inputs, asked of PostgreSQL + PostGIS loaded with the same reads by
//! `benches/peer/postgis.sh`, over its own client connection (TCP or a
//! Unix socket), so both figures are end to end from a client process.
//!
//! The SQL is what a competent PostGIS user would write against that
//! script's schema (`reads`: one row per read, `geog geography(Point)` with
//! GiST, btree on `(vrm, observed_at)` and `(force, camera_id,
//! observed_at)`, BRIN on time): prepared statements, the circle as
//! `ST_DWithin` on the sphere nadc also uses (radius 6,371,008.8 m), time
//! windows inclusive at both ends as nadc's are. Every row is fetched and
//! its main columns decoded, as nadc's client decodes every row it gets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use nadc_core::{Timestamp, Vrm};
use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::bench::{Kind, Sample};

/// The columns each search returns.
const COLUMNS: &str = "force, read_id, vrm, vrm_raw, observed_at, camera_id, \
     ST_Y(geog::geometry) AS lat, ST_X(geog::geometry) AS lon, bearing, lane, confidence, \
     make, model, colour, country, patch_image_ref, overview_image_ref";

/// A circle and window with parameters `$n..$n+4`: lon, lat, radius (m),
/// from, to.
fn area(n: usize) -> String {
    format!(
        "(ST_DWithin(geog, ST_SetSRID(ST_MakePoint(${}, ${}), 4326)::geography, ${}, false) \
         AND observed_at BETWEEN ${} AND ${})",
        n,
        n + 1,
        n + 2,
        n + 3,
        n + 4
    )
}

/// The SQL of a search kind, or `None` where PostGIS has no equivalent
/// (fuzzy VRM matching with confusable characters).
pub fn sql(kind: Kind) -> Option<String> {
    Some(match kind {
        Kind::Vrm => {
            format!(
                "SELECT {COLUMNS} FROM reads WHERE vrm = $1 ORDER BY observed_at, force, read_id"
            )
        }
        Kind::Fuzzy => return None,
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
    })
}

/// A connection with the search's statement prepared.
pub struct Peer {
    client: Client,
    statement: Statement,
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
        let sql = sql(kind).with_context(|| {
            format!("PostGIS has no equivalent of the {kind:?} search to compare with")
        })?;
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
        Ok(Peer {
            client,
            statement,
            kind,
            _connection: task,
        })
    }

    /// Runs the search for these inputs (the same nadc was asked) and
    /// returns the rows.
    pub async fn search(&self, s: &Sample, other: &Sample) -> anyhow::Result<usize> {
        const H: i64 = 3_600_000;
        let window = |x: &Sample, before: i64, after: i64| {
            (
                time(x.at.plus_millis(-before)),
                time(x.at.plus_millis(after)),
            )
        };
        let rows: Vec<Row> = match self.kind {
            Kind::Vrm => {
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
            Kind::Fuzzy => anyhow::bail!("PostGIS has no fuzzy VRM search to compare with"),
        };
        // Decode what a caller would use of every row.
        for row in &rows {
            let _: (&str, &str, SystemTime, f64, f64) = (
                row.try_get("read_id")?,
                row.try_get("vrm")?,
                row.try_get("observed_at")?,
                row.try_get("lat")?,
                row.try_get("lon")?,
            );
        }
        Ok(rows.len())
    }
}
