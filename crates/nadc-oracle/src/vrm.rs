//! How a plate matches a query, from the confusable table: the same
//! plate; the same length with only confusable characters different; or
//! within a number of edits (insertions, deletions and substitutions,
//! where swapping two confusable characters costs nothing); or a wildcard
//! pattern (`?` one character, `*` any run, possibly empty).

/// nadc's default confusable table: each group's characters are read for
/// one another by OCR.
pub const DEFAULT_TABLE: [&str; 6] = ["0ODQ", "1I", "2Z", "5S", "8B", "6G"];

/// How a plate matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// The same plate.
    Exact,
    /// Confusable characters differ at these 1-based positions.
    Confusable(Vec<usize>),
    /// This many edits apart.
    Edits(usize),
    /// It fits the wildcard pattern.
    Wildcard,
}

/// How `plate` matches `query` under `table` with at most `max_edits`
/// edits (a query holding `?` or `*` is a wildcard pattern), or `None`.
pub fn vrm_match(table: &[&str], query: &str, plate: &str, max_edits: usize) -> Option<Match> {
    if query.contains(['?', '*']) {
        return wildcard(query.as_bytes(), plate.as_bytes()).then_some(Match::Wildcard);
    }
    if query == plate {
        return Some(Match::Exact);
    }
    let same = |a: char, b: char| a == b || table.iter().any(|g| g.contains(a) && g.contains(b));
    let (q, p): (Vec<char>, Vec<char>) = (query.chars().collect(), plate.chars().collect());
    if q.len() == p.len() && q.iter().zip(&p).all(|(a, b)| same(*a, *b)) {
        let at = (0..q.len())
            .filter(|&i| q[i] != p[i])
            .map(|i| i + 1)
            .collect();
        return Some(Match::Confusable(at));
    }
    // The whole Levenshtein table, no bound.
    let mut d = vec![vec![0usize; p.len() + 1]; q.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=q.len() {
        for j in 1..=p.len() {
            let swap = d[i - 1][j - 1] + usize::from(!same(q[i - 1], p[j - 1]));
            d[i][j] = swap.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
        }
    }
    let edits = d[q.len()][p.len()];
    (edits <= max_edits).then_some(Match::Edits(edits))
}

/// Recursive wildcard match.
fn wildcard(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|k| wildcard(rest, &s[k..])),
        Some((c, rest)) => match s.split_first() {
            Some((d, tail)) if *c == b'?' || c == d => wildcard(rest, tail),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_match() {
        let t = &DEFAULT_TABLE;
        assert_eq!(vrm_match(t, "AB12CDE", "AB12CDE", 1), Some(Match::Exact));
        assert_eq!(
            vrm_match(t, "AB12CDE", "A812CDE", 1),
            Some(Match::Confusable(vec![2]))
        );
        assert_eq!(vrm_match(t, "AB12CDE", "AB12CD", 1), Some(Match::Edits(1)));
        assert_eq!(vrm_match(t, "AB12CDE", "A812CD", 1), Some(Match::Edits(1)));
        assert_eq!(vrm_match(t, "AB12CDE", "XB12CDF", 1), None);
        assert_eq!(vrm_match(t, "AB12CDE", "XB12CDF", 2), Some(Match::Edits(2)));
        assert_eq!(vrm_match(t, "AB*", "AB12CDE", 0), Some(Match::Wildcard));
        assert_eq!(vrm_match(t, "A?12*E", "AB12CDE", 0), Some(Match::Wildcard));
        assert_eq!(vrm_match(t, "A?12*F", "AB12CDE", 0), None);
        assert_eq!(vrm_match(t, "*", "", 0), Some(Match::Wildcard));
    }
}
