//! The patient's questions for the specialist: one per line of the case's
//! `patient_questions`, the same text staff see and edit. Questions for the
//! consultation come first; follow-up questions, asked after it, are the
//! lines marked [`FOLLOW_UP`]. The portal adds, changes, moves and removes
//! whole questions; the edits are plain functions over the lists.

use crate::{
    error::{AppResult, FieldErrors},
    validate::{check_text, limits},
};

/// Most questions a list may hold.
pub const MOST_QUESTIONS: usize = 40;

/// Marks a follow-up question in the stored text.
pub const FOLLOW_UP: &str = "Follow-up: ";

/// Which list a question is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Consultation,
    FollowUp,
}

/// The questions for the consultation and the follow-up questions in
/// `text`, each in order, blank lines left out.
pub fn split(text: &str) -> (Vec<String>, Vec<String>) {
    let mut consultation = Vec::new();
    let mut follow_up = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.strip_prefix(FOLLOW_UP) {
            Some(question) => follow_up.push(question.trim().to_string()),
            None => consultation.push(line.to_string()),
        }
    }
    (consultation, follow_up)
}

/// The lists as stored: one question per line, follow-ups marked.
pub fn join(consultation: &[String], follow_up: &[String]) -> String {
    consultation
        .iter()
        .cloned()
        .chain(follow_up.iter().map(|q| format!("{FOLLOW_UP}{q}")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` with `edit` made to its `part`. An edit of a question names it by
/// position and by `shown`, the question as the page showed it: if someone
/// changed the list since, the edit is refused rather than made to another
/// question.
pub fn edit(text: &str, part: Part, edit: Edit, shown: Option<&str>) -> AppResult<String> {
    let (mut consultation, mut follow_up) = split(text);
    let list = match part {
        Part::Consultation => &mut consultation,
        Part::FollowUp => &mut follow_up,
    };
    let position = match &edit {
        Edit::Add(_) => None,
        Edit::Change(at, _) | Edit::Up(at) | Edit::Down(at) | Edit::Remove(at) => Some(*at),
    };
    if let Some(at) = position
        && list.get(at).map(String::as_str) != shown.map(str::trim)
    {
        return Err(FieldErrors::single(
            "position",
            "that question changed since the page was shown; here is the list as it is now",
        ));
    }
    *list = apply(std::mem::take(list), edit)?;
    Ok(join(&consultation, &follow_up))
}

/// One change to the list. Positions count from 0 in the list as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Add(String),
    Change(usize, String),
    Up(usize),
    Down(usize),
    Remove(usize),
}

/// `questions` with `edit` made, or what is wrong with it.
pub fn apply(mut questions: Vec<String>, edit: Edit) -> AppResult<Vec<String>> {
    let missing = |at: usize, len: usize| {
        if at >= len { Err(FieldErrors::single("position", "that question is no longer on the list")) } else { Ok(()) }
    };
    match edit {
        Edit::Add(text) => {
            let text = one_line(&text)?;
            if questions.len() >= MOST_QUESTIONS {
                return Err(FieldErrors::single(
                    "question",
                    format!("the list holds at most {MOST_QUESTIONS} questions"),
                ));
            }
            questions.push(text);
        }
        Edit::Change(at, text) => {
            missing(at, questions.len())?;
            questions[at] = one_line(&text)?;
        }
        Edit::Up(at) => {
            missing(at, questions.len())?;
            if at > 0 {
                questions.swap(at, at - 1);
            }
        }
        Edit::Down(at) => {
            missing(at, questions.len())?;
            if at + 1 < questions.len() {
                questions.swap(at, at + 1);
            }
        }
        Edit::Remove(at) => {
            missing(at, questions.len())?;
            questions.remove(at);
        }
    }
    Ok(questions)
}

/// A question as kept: on one line, not empty, not too long.
fn one_line(text: &str) -> AppResult<String> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut errors = FieldErrors::new();
    check_text(&mut errors, "question", &text, limits::SHORT_TEXT, true);
    errors.into_result()?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn questions_are_added_changed_moved_and_removed_as_whole_lines() {
        let (start, none) = split("Is surgery needed?\n\n  What if we wait?  \n");
        assert!(none.is_empty());
        assert_eq!(start, qs(&["Is surgery needed?", "What if we wait?"]));
        let added = apply(start, Edit::Add("Which   tests\nare missing?".into())).expect("added");
        assert_eq!(added[2], "Which tests are missing?", "kept on one line");
        let moved = apply(added, Edit::Up(2)).expect("moved");
        assert_eq!(moved, qs(&["Is surgery needed?", "Which tests are missing?", "What if we wait?"]));
        let same = apply(moved.clone(), Edit::Up(0)).expect("the first stays first");
        assert_eq!(same, moved);
        let down = apply(moved, Edit::Down(0)).expect("moved down");
        assert_eq!(down[1], "Is surgery needed?");
        let changed = apply(down, Edit::Change(1, "Is surgery the only option?".into())).expect("changed");
        let removed = apply(changed, Edit::Remove(0)).expect("removed");
        assert_eq!(join(&removed, &[]), "Is surgery the only option?\nWhat if we wait?");
        assert!(apply(removed.clone(), Edit::Remove(5)).is_err(), "a question gone since the page was shown");
        assert!(apply(removed, Edit::Add("   ".into())).is_err(), "an empty question");
        let full = vec!["q".to_string(); MOST_QUESTIONS];
        assert!(apply(full, Edit::Add("one more".into())).is_err());
    }

    #[test]
    fn follow_up_questions_keep_to_their_own_list() {
        let text = "Is surgery needed?\nFollow-up: Can I see the slides?";
        let added = edit(text, Part::FollowUp, Edit::Add("When should I start?".into()), None).expect("added");
        assert_eq!(added, "Is surgery needed?\nFollow-up: Can I see the slides?\nFollow-up: When should I start?");
        let moved = edit(&added, Part::FollowUp, Edit::Up(1), Some("When should I start?")).expect("moved");
        let (consultation, follow_up) = split(&moved);
        assert_eq!(consultation, ["Is surgery needed?"]);
        assert_eq!(follow_up, ["When should I start?", "Can I see the slides?"]);
        // The page showed another question at that place: someone changed the list since.
        assert!(edit(&moved, Part::FollowUp, Edit::Remove(0), Some("Can I see the slides?")).is_err());
        assert!(edit(&moved, Part::Consultation, Edit::Remove(0), None).is_err(), "a position needs its question");
    }
}
