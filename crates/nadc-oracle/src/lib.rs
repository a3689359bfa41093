//! Test oracles: brute-force references for nadc's exactness tests,
//! written apart from the code they check and sharing none of it (this
//! crate depends on nothing), so a test that compares a search with them
//! can fail when the search is wrong.
//!
//! - [`distance_m`]: the WGS84 geodesic distance by Vincenty's inverse
//!   formula (nadc uses Karney's algorithm), checked against published
//!   geodesic distances to within a millimetre.
//! - [`in_polygon`]: point in polygon by winding number on the
//!   microdegree grid, edges and vertices inside (nadc uses an even-odd
//!   crossing test).
//! - [`vrm_match`]: how a plate matches a query, from the confusable
//!   table, an unbounded Levenshtein table and a recursive wildcard match.
#![forbid(unsafe_code)]

mod geodesic;
mod polygon;
mod vrm;

pub use geodesic::distance_m;
pub use polygon::in_polygon;
pub use vrm::{DEFAULT_TABLE, Match, vrm_match};
