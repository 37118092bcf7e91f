//! Which cases an actor may see, as one value that every case query builds
//! its filter from: the API list, the caseload, its consultations and its
//! activity list.

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect, Select};

use super::tallies::UNASSIGNED;
use crate::{
    actor::{Actor, Scope},
    db::entities::case,
};

/// The advocates whose cases are in view; empty means every case. The key
/// [`UNASSIGNED`] stands for the cases nobody is assigned to, as in the tallies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseScope {
    advocates: Vec<i32>,
}

impl CaseScope {
    /// An advocate sees their own cases; anyone may narrow the view to one
    /// advocate's (for an advocate, asking for another's shows nothing).
    pub fn of(actor: &Actor, requested_advocate: Option<i32>) -> Self {
        let mut advocates = Vec::new();
        match actor.scope {
            Scope::OwnCases(me) => advocates.push(me),
            // The portal lists nothing through staff lists: no user has id 0.
            Scope::OneCase(_) => advocates.push(0),
            Scope::Everything => {}
        }
        advocates.extend(requested_advocate);
        advocates.dedup();
        Self { advocates }
    }

    /// One advocate's cases, whoever asks (the reminder digests).
    pub fn advocate(id: i32) -> Self {
        Self { advocates: vec![id] }
    }

    /// Every case, as an admin's unnarrowed view has it.
    pub fn everything() -> Self {
        Self { advocates: Vec::new() }
    }

    /// The filter on the `cases` table.
    pub fn condition(&self) -> Condition {
        self.advocates.iter().fold(Condition::all(), |cond, id| {
            if *id == UNASSIGNED {
                cond.add(case::Column::AdvocateId.is_null())
            } else {
                cond.add(case::Column::AdvocateId.eq(*id))
            }
        })
    }

    /// The same filter for hand-written SQL, on the `cases` table named `alias`.
    pub fn sql(&self, alias: &str) -> String {
        self.advocates
            .iter()
            .map(|id| {
                if *id == UNASSIGNED {
                    format!(" AND {alias}.advocate_id IS NULL")
                } else {
                    format!(" AND {alias}.advocate_id = {id}")
                }
            })
            .collect()
    }

    /// The same filter on a column holding the advocate key of a tally row.
    pub fn sql_on_key(&self, column: &str) -> String {
        self.advocates.iter().map(|id| format!(" AND {column} = {id}")).collect()
    }

    /// The ids of the cases in view, as a subquery; `None` when every case is.
    pub fn case_ids(&self) -> Option<Select<case::Entity>> {
        (!self.advocates.is_empty())
            .then(|| case::Entity::find().select_only().column(case::Column::Id).filter(self.condition()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Role;

    #[test]
    fn advocates_see_their_own_and_admins_what_they_ask_for() {
        let advocate = Actor::user(7, "a@example.org", Role::Advocate, None);
        let admin = Actor::user(1, "admin@example.org", Role::Admin, None);
        assert_eq!(CaseScope::of(&advocate, None).sql("c"), " AND c.advocate_id = 7");
        assert_eq!(CaseScope::of(&advocate, Some(9)).sql("c"), " AND c.advocate_id = 7 AND c.advocate_id = 9");
        assert_eq!(CaseScope::of(&admin, None).sql("c"), "");
        assert!(CaseScope::of(&admin, None).case_ids().is_none());
        assert_eq!(CaseScope::of(&admin, Some(9)).sql("c"), " AND c.advocate_id = 9");
        // The unassigned queue: no advocate on the case, key 0 in the tallies.
        assert_eq!(CaseScope::of(&admin, Some(UNASSIGNED)).sql("c"), " AND c.advocate_id IS NULL");
        assert_eq!(CaseScope::of(&admin, Some(UNASSIGNED)).sql_on_key("t.advocate_key"), " AND t.advocate_key = 0");
        assert_eq!(
            CaseScope::of(&advocate, Some(UNASSIGNED)).sql("c"),
            " AND c.advocate_id = 7 AND c.advocate_id IS NULL"
        );
    }
}
