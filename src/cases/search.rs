//! Finding a case by what people remember of it: the patient's name with
//! or without accents, in any order and case, part of it or all; their
//! email or phone number; the case reference. Open and closed cases alike.
//!
//! Each case's searchable words are kept, folded to plain lower-case
//! letters and digits, in `case_search_terms` (one row per word). Every
//! word of a search must start one of the case's words. A search reads the
//! index range of its rarest word and checks each candidate's other words
//! with one seek, so what it costs follows how many words share that
//! beginning, never the number of cases; past [`SCAN_LIMIT`] entries or
//! [`MATCH_LIMIT`] matches it asks for more letters instead.
//!
//! Names shared by many patients (a common surname with a common first
//! name) would make even the rarest word a long read, so every ordered pair
//! of a name's words is indexed too, as one entry (`~garcia maria`). When
//! each word of a search is common (its rarest begins more than a couple of
//! hundred entries), two of its words are looked up together as words of
//! the patient's name if that reads fewer: the read then follows how many
//! patients share both.

use std::collections::BTreeSet;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement, Value,
    sea_query::{Expr, ExprTrait, SimpleExpr},
};

use crate::{
    db::{self, entities::case},
    error::{AppResult, FieldErrors},
};

/// The most index entries one word of a search may read.
pub const SCAN_LIMIT: u64 = 20_000;
/// The most cases one search may match (forty pages of the caseload).
pub const MATCH_LIMIT: u64 = 1_000;
/// How far each word's entries are counted to find the rarest.
const CHOOSING_LIMIT: u64 = 2_000;
/// Words of a search beyond this many are ignored: more never narrows usefully.
const MOST_WORDS: usize = 6;
/// Longer words are cut to this length, on both sides of the comparison.
const LONGEST_WORD: usize = 64;
/// Below this many entries for its rarest word a search reads them as
/// they are; above, a pair of its words is tried, and read when fewer.
const PAIRS_WORTH_IT: u64 = 200;
/// Pairs are indexed among this many of a name's words at most.
const MOST_PAIRED_WORDS: usize = 6;
/// A paired lookup reads the pairs of at most this many indexed words
/// beginning with the search's word ("garcia" → garcia, garcialopez).
const MOST_COMPLETIONS: usize = 8;
/// Starts every pair entry: above the letters and digits, so pairs never
/// fall in a single word's range.
const PAIR_MARK: char = '~';
/// Phone numbers are found by any ending of at least this many digits
/// ("0142", "555 0142", "617 555 0142").
const SHORTEST_PHONE_ENDING: usize = 4;

/// Plain lower-case ASCII: accents dropped ("García" → "garcia"), other
/// scripts spelled out in Latin letters, as both sides of a search see it.
fn fold(text: &str) -> String {
    deunicode::deunicode(text).to_lowercase()
}

/// The letters and digits of `chunk`, run together ("o'brien" → "obrien").
fn joined(chunk: &str) -> String {
    chunk.chars().filter(char::is_ascii_alphanumeric).take(LONGEST_WORD).collect()
}

/// The runs of letters and digits in `chunk` ("garcia-lopez" → garcia, lopez).
fn words(chunk: &str) -> impl Iterator<Item = String> + '_ {
    chunk
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().take(LONGEST_WORD).collect())
}

/// What a case can be found by. `name` is empty once a patient's data is
/// erased, leaving the reference.
pub fn case_terms(name: &str, email: &str, phone: Option<&str>, reference: &str) -> BTreeSet<String> {
    let mut terms = BTreeSet::new();
    let mut name_words: Vec<String> = Vec::new();
    for chunk in fold(name).split_whitespace() {
        // "García-López" typed as "garcialopez" or "garcia lopez" both find it.
        for word in words(chunk).chain([joined(chunk)]) {
            if !word.is_empty() && !name_words.contains(&word) {
                name_words.push(word);
            }
        }
    }
    for first in name_words.iter().take(MOST_PAIRED_WORDS) {
        for second in name_words.iter().take(MOST_PAIRED_WORDS).filter(|w| *w != first) {
            terms.insert(pair_term(first, second));
        }
    }
    terms.extend(name_words);
    // The whole address, run together: typing its start finds it
    // ("mj.garcia", "mj.garcia@exam"); the name already holds its words.
    let email = fold(email.trim());
    if !email.is_empty() {
        terms.insert(joined(&email));
    }
    if let Some(phone) = phone {
        let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
        for start in 0..digits.len().saturating_sub(SHORTEST_PHONE_ENDING - 1) {
            terms.insert(digits[start..].iter().take(LONGEST_WORD).collect());
        }
    }
    let reference = fold(reference);
    terms.insert(joined(&reference));
    // The number at its end, with and without its leading zeros ("000123", "123").
    if let Some(number) = words(&reference).last().filter(|w| w.chars().all(|c| c.is_ascii_digit())) {
        let trimmed = number.trim_start_matches('0').to_string();
        terms.insert(number);
        if !trimmed.is_empty() {
            terms.insert(trimmed);
        }
    }
    terms.remove("");
    terms
}

/// The words of a search, each a beginning some word of the case must
/// have; longest first. Punctuation
/// inside a word is ignored ("555-0142", "SL-2026-000123", "o'brien").
pub fn query_words(query: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for word in fold(query).split_whitespace().map(joined).filter(|w| !w.is_empty()) {
        if !found.contains(&word) {
            found.push(word);
        }
    }
    found.sort_by_key(|w| std::cmp::Reverse(w.len()));
    found.truncate(MOST_WORDS);
    found
}

/// The entry for two words of one name, `first` then `second`.
fn pair_term(first: &str, second: &str) -> String {
    format!("{PAIR_MARK}{first} {second}")
}

/// Two words of a search to look up as a pair: letters only (as names
/// are), the longest first, neither the beginning of the other (one word
/// of a name could start both).
fn pairable(words: &[String]) -> Option<(&str, &str)> {
    let lettered: Vec<&str> =
        words.iter().map(String::as_str).filter(|w| w.chars().all(|c| c.is_ascii_alphabetic())).collect();
    let (first, rest) = lettered.split_first()?;
    let second = rest.iter().find(|w| !first.starts_with(**w) && !w.starts_with(first))?;
    Some((first, second))
}

/// The range of words that begin with `word`: words hold only `a-z0-9`,
/// all below `{`.
fn range_of(word: &str) -> (String, String) {
    (word.to_string(), format!("{word}{{"))
}

/// The cases in `scope` matching every word of a search, as a condition
/// on `cases.id` for a list to add to its own; `None` for a blank search. A
/// search with no letters or digits (only punctuation) matches nothing.
///
/// The matches are found once, here: the word that begins the fewest
/// indexed words drives the lookup and each candidate's other words are
/// checked with one index seek. A search is refused when even its rarest
/// word begins more than [`SCAN_LIMIT`] indexed words, or when more than
/// [`MATCH_LIMIT`] cases match: both ask for more letters.
pub async fn matching<C: ConnectionTrait>(
    conn: &C,
    field: &str,
    query: &str,
    scope: &super::scope::CaseScope,
) -> AppResult<Option<SimpleExpr>> {
    if query.trim().is_empty() {
        return Ok(None);
    }
    let words = query_words(query);
    if words.is_empty() {
        return Ok(Some(Expr::cust("1 = 0")));
    }
    // Counting stops early: most words of a search are rare, and only the
    // rarest needs an exact count.
    let mut counted = Vec::new();
    for word in &words {
        counted.push((entries_starting(conn, word, CHOOSING_LIMIT).await?, word.clone()));
    }
    counted.sort();
    // Two common words read fewer entries together, as a pair of the name.
    let mut driver = None;
    let rarest_entries = counted[0].0;
    if rarest_entries > PAIRS_WORTH_IT
        && let Some((first, second)) = pairable(&words)
        && let Some((paired, entries)) =
            paired_lookup(conn, first, second, Ord::min(rarest_entries, SCAN_LIMIT)).await?
        && entries < rarest_entries
    {
        driver = Some(paired);
    }
    if counted[0].0 > CHOOSING_LIMIT && driver.is_none() {
        for entry in counted.iter_mut() {
            entry.0 = entries_starting(conn, &entry.1, SCAN_LIMIT).await?;
        }
        counted.sort();
    }
    let driver = match driver {
        Some(paired) => paired,
        None => {
            let (count, rarest) = &counted[0];
            if *count > SCAN_LIMIT {
                return Err(FieldErrors::single(
                    field,
                    format!(
                        "finds too many cases with a word starting with “{rarest}”: type more of it, or add another word"
                    ),
                ));
            }
            Lookup { ranges: vec![range_of(rarest)], covers: vec![rarest.clone()] }
        }
    };
    let backend = conn.get_database_backend();
    let driving: Vec<&str> = driver.ranges.iter().map(|_| "(t0.term >= ? AND t0.term < ?)").collect();
    let mut sql = format!("SELECT DISTINCT t0.case_id FROM case_search_terms t0 WHERE ({})", driving.join(" OR "));
    let mut values: Vec<Value> =
        driver.ranges.into_iter().flat_map(|(low, high)| [Value::from(low), Value::from(high)]).collect();
    for (_, word) in counted.iter().filter(|(_, word)| !driver.covers.contains(word)) {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM case_search_terms t1 \
             WHERE t1.case_id = t0.case_id AND t1.term >= ? AND t1.term < ?)",
        );
        let (low, high) = range_of(word);
        values.extend([Value::from(low), Value::from(high)]);
    }
    let scoped = scope.sql("c");
    if !scoped.is_empty() {
        sql.push_str(&format!(" AND EXISTS (SELECT 1 FROM cases c WHERE c.id = t0.case_id{scoped})"));
    }
    sql.push_str(" LIMIT ?");
    values.push(Value::from(MATCH_LIMIT as i64 + 1));
    let ids: Vec<i32> = conn
        .query_all_raw(Statement::from_sql_and_values(backend, db::placeholders(backend, &sql), values))
        .await?
        .iter()
        .map(|row| row.try_get::<i32>("", "case_id"))
        .collect::<Result<_, _>>()?;
    if ids.len() as u64 > MATCH_LIMIT {
        return Err(FieldErrors::single(
            field,
            format!("matches more than {MATCH_LIMIT} cases: add more of the name, or the email, phone or reference"),
        ));
    }
    if ids.is_empty() {
        return Ok(Some(Expr::cust("1 = 0")));
    }
    Ok(Some(Expr::col((case::Entity, case::Column::Id)).is_in(ids)))
}

/// The index ranges that find a search's candidates, and the words of the
/// search they already account for.
struct Lookup {
    ranges: Vec<(String, String)>,
    covers: Vec<String>,
}

/// The pairs of a name beginning with a word that begins with `first`,
/// followed by one beginning with `second`, and how many entries they are:
/// `None` when `first` begins too many different words, or the pairs are
/// more than `at_most` entries.
async fn paired_lookup<C: ConnectionTrait>(
    conn: &C,
    first: &str,
    second: &str,
    at_most: u64,
) -> AppResult<Option<(Lookup, u64)>> {
    let Some(completions) = words_beginning(conn, first, MOST_COMPLETIONS).await? else { return Ok(None) };
    let ranges: Vec<(String, String)> = completions.iter().map(|word| range_of(&pair_term(word, second))).collect();
    let mut entries = 0;
    for range in &ranges {
        entries += entries_in(conn, range.clone(), at_most).await?;
        if entries > at_most {
            return Ok(None);
        }
    }
    Ok(Some((Lookup { ranges, covers: vec![first.to_string(), second.to_string()] }, entries)))
}

/// The different indexed words beginning with `word`, each found with one
/// seek; `None` past `most` of them.
async fn words_beginning<C: ConnectionTrait>(conn: &C, word: &str, most: usize) -> AppResult<Option<Vec<String>>> {
    let backend = conn.get_database_backend();
    let (low, high) = range_of(word);
    let mut found: Vec<String> = Vec::new();
    loop {
        let (above, after) = match found.last() {
            None => (">=", low.clone()),
            Some(last) => (">", last.clone()),
        };
        let sql = format!("SELECT term FROM case_search_terms WHERE term {above} ? AND term < ? ORDER BY term LIMIT 1");
        let next = conn
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                db::placeholders(backend, &sql),
                [Value::from(after), Value::from(high.clone())],
            ))
            .await?;
        let Some(row) = next else { return Ok(Some(found)) };
        if found.len() == most {
            return Ok(None);
        }
        found.push(row.try_get("", "term")?);
    }
}

/// How many indexed words begin with `word`, counting no further than one
/// past `limit`.
async fn entries_starting<C: ConnectionTrait>(conn: &C, word: &str, limit: u64) -> AppResult<u64> {
    entries_in(conn, range_of(word), limit).await
}

/// How many index entries lie in `range`, counting no further than one
/// past `limit`.
async fn entries_in<C: ConnectionTrait>(conn: &C, (low, high): (String, String), limit: u64) -> AppResult<u64> {
    let backend = conn.get_database_backend();
    let count = db::placeholders(
        backend,
        "SELECT COUNT(*) AS n FROM (SELECT 1 FROM case_search_terms WHERE term >= ? AND term < ? LIMIT ?) t",
    );
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            count,
            [Value::from(low), Value::from(high), Value::from(limit as i64 + 1)],
        ))
        .await?;
    let n = row.map(|row| row.try_get::<i64>("", "n")).transpose()?.unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Replaces a case's searchable words, in the caller's transaction.
pub async fn index_case<C: ConnectionTrait>(conn: &C, case_id: i32, terms: &BTreeSet<String>) -> AppResult<()> {
    let backend = conn.get_database_backend();
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        db::placeholders(backend, "DELETE FROM case_search_terms WHERE case_id = ?"),
        [Value::from(case_id)],
    ))
    .await?;
    insert_terms(conn, terms.iter().map(|t| (t.as_str(), case_id))).await
}

/// Rows per insert statement: far under both databases' parameter limits.
const INSERT_BATCH: usize = 400;

async fn insert_terms<'a, C: ConnectionTrait>(conn: &C, rows: impl Iterator<Item = (&'a str, i32)>) -> AppResult<()> {
    let backend = conn.get_database_backend();
    let rows: Vec<(&str, i32)> = rows.collect();
    for batch in rows.chunks(INSERT_BATCH) {
        let tuples = vec!["(?, ?)"; batch.len()].join(", ");
        let values: Vec<Value> =
            batch.iter().flat_map(|(t, id)| [Value::from(t.to_string()), Value::from(*id)]).collect();
        conn.execute_raw(Statement::from_sql_and_values(
            backend,
            db::placeholders(backend, &format!("INSERT INTO case_search_terms (term, case_id) VALUES {tuples}")),
            values,
        ))
        .await?;
    }
    Ok(())
}

/// Which way of indexing built the words, as `case_search_state` records it:
/// 1 was single words, 2 added the pairs of a name's words. A database
/// built another way is rebuilt once.
const BUILT_FORM: i32 = 2;

/// Cases read per query while rebuilding.
const REBUILD_CHUNK: u64 = 2_000;

/// One case's searchable fields, as a rebuild reads them.
type Searchable = (i32, String, String, Option<String>, String);

/// Recomputes every case's words, in one write transaction.
pub async fn rebuild(db: &DatabaseConnection) -> AppResult<()> {
    let txn = db::begin_write(db).await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        // Keeps case writes (and a second rebuild) out until this one commits.
        txn.execute_unprepared("LOCK TABLE cases IN SHARE ROW EXCLUSIVE MODE").await?;
    }
    txn.execute_unprepared("DELETE FROM case_search_terms").await?;
    txn.execute_unprepared("DELETE FROM case_search_state").await?;
    let mut last = 0;
    loop {
        let rows: Vec<Searchable> = case::Entity::find()
            .select_only()
            .columns([
                case::Column::Id,
                case::Column::PatientName,
                case::Column::PatientEmail,
                case::Column::PatientPhone,
                case::Column::Reference,
            ])
            .filter(case::Column::Id.gt(last))
            .order_by_asc(case::Column::Id)
            .limit(REBUILD_CHUNK)
            .into_tuple()
            .all(&txn)
            .await?;
        let Some(tail) = rows.last() else { break };
        last = tail.0;
        let terms: Vec<(i32, BTreeSet<String>)> = rows
            .iter()
            .map(|(id, name, email, phone, reference)| (*id, case_terms(name, email, phone.as_deref(), reference)))
            .collect();
        insert_terms(&txn, terms.iter().flat_map(|(id, words)| words.iter().map(|w| (w.as_str(), *id)))).await?;
    }
    txn.execute_unprepared(&format!("INSERT INTO case_search_state (id) VALUES ({BUILT_FORM})")).await?;
    txn.commit().await?;
    Ok(())
}

/// Builds the words once for a database whose cases predate them, or
/// whose words were indexed another way.
pub async fn ensure_built(db: &DatabaseConnection) -> AppResult<()> {
    let built = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT id FROM case_search_state WHERE id = {BUILT_FORM}"),
        ))
        .await?;
    if built.is_none() {
        rebuild(db).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(terms: &BTreeSet<String>, query: &str) -> bool {
        let words = query_words(query);
        !words.is_empty() && words.iter().all(|w| terms.iter().any(|t| t.starts_with(w.as_str())))
    }

    #[test]
    fn names_are_found_without_accents_in_any_order() {
        let terms = case_terms("María José García-López", "mj.garcia@example.org", None, "SL-2026-000123");
        for query in [
            "garcia",
            "GARCÍA",
            "garcia maria",
            "lopez garcia",
            "garcia-lopez",
            "garcialopez",
            "mar gar",
            "jose",
            "  maría   josé  ",
        ] {
            assert!(found(&terms, query), "{query:?} should find the case");
        }
        for query in ["garcias", "maria smith", "example", "lopezgarcia"] {
            assert!(!found(&terms, query), "{query:?} should not find the case");
        }
    }

    #[test]
    fn email_phone_and_reference_find_the_case() {
        let terms =
            case_terms("Robin O'Brien", "Robin.OBrien@Example.org", Some("+1 (617) 555-0142"), "SL-2026-000123");
        for query in [
            "robin.obrien@example.org",
            "robin.obrien@",
            "obrien",
            "o'brien",
            "+1 617 555 0142",
            "617-555-0142",
            "(617) 555-0142",
            "555 0142",
            "0142",
            "SL-2026-000123",
            "sl-2026",
            "000123",
            "123",
        ] {
            assert!(found(&terms, query), "{query:?} should find the case");
        }
        for query in ["555 0143", "000124", "example.org"] {
            assert!(!found(&terms, query), "{query:?} should not find the case");
        }
    }

    #[test]
    fn other_scripts_are_found_as_typed() {
        let terms = case_terms("山田 太郎", "", None, "SL-2026-000001");
        assert!(found(&terms, "山田"));
        let terms = case_terms("Søren Ørsted", "", None, "SL-2026-000002");
        assert!(found(&terms, "soren orsted") && found(&terms, "Ørsted"));
    }

    #[test]
    fn an_erased_case_keeps_only_its_reference() {
        let terms = case_terms("", "", None, "SL-2026-000123");
        assert_eq!(terms.into_iter().collect::<Vec<_>>(), ["000123", "123", "sl2026000123"]);
    }

    #[test]
    fn a_names_words_are_paired_both_ways_and_nothing_else_is() {
        let terms = case_terms("Ana García-López", "ana@example.org", Some("555 0142"), "SL-2026-000123");
        let pairs: Vec<&str> = terms.iter().filter(|t| t.starts_with(PAIR_MARK)).map(String::as_str).collect();
        assert_eq!(pairs.len(), 12, "{pairs:?}");
        for pair in ["~ana garcia", "~garcia ana", "~lopez garcia", "~garcialopez ana", "~ana garcialopez"] {
            assert!(pairs.contains(&pair), "{pair} in {pairs:?}");
        }
        // No single word's range holds a pair.
        let (low, high) = range_of("gar");
        assert!(pairs.iter().all(|p| !(low.as_str() <= *p && *p < high.as_str())));
        assert!(case_terms("Cher", "", None, "SL-1").iter().all(|t| !t.starts_with(PAIR_MARK)));
    }

    #[test]
    fn pairs_are_looked_up_for_two_lettered_words_that_cannot_share_one_word() {
        let words = |q: &str| query_words(q);
        assert_eq!(pairable(&words("garcia maria")), Some(("garcia", "maria")));
        assert_eq!(pairable(&words("mar garcia 0142")), Some(("garcia", "mar")));
        // "mar" and "maria" could both begin "mariana".
        assert_eq!(pairable(&words("maria mar")), None);
        assert_eq!(pairable(&words("garcia 0142")), None);
        assert_eq!(pairable(&words("garcia")), None);
    }

    #[test]
    fn query_words_are_distinct_longest_first_and_bounded() {
        assert_eq!(query_words("al García garcia BO"), ["garcia", "al", "bo"]);
        assert!(query_words(" - ' ").is_empty());
        assert_eq!(query_words("a b c d e f g h").len(), MOST_WORDS);
        let (low, high) = range_of("gar");
        assert!(low.as_str() <= "gar" && "garcia" < high.as_str() && "gas" > high.as_str());
    }
}
