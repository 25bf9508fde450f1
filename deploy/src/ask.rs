//! Asking the questions: at a terminal (each with its default, refused with the reason until
//! the answer is acceptable, saved the moment it is given), or not at all (`--yes`: saved or
//! given answers, then defaults).

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Password, Select};

use crate::answers::{Answers, AnswersError, Kind, Question};
use crate::layout::Layout;

#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("the terminal: {0}")]
    Terminal(String),
    #[error(transparent)]
    Answers(#[from] AnswersError),
    #[error("no answer for {0}, and it has no default: add it to the answers file")]
    Missing(&'static str),
}

impl From<dialoguer::Error> for AskError {
    fn from(e: dialoguer::Error) -> AskError {
        // (Ctrl-C does not come here: the prompt raises SIGINT and the run ends; every answer
        // given before it is already saved.)
        let dialoguer::Error::IO(e) = e;
        AskError::Terminal(e.to_string())
    }
}

/// Fills in every answer that applies without asking (`--yes`), then checks them all; saves
/// them when `save` (not for `--dry-run`).
pub fn without_asking(
    layout: &Layout,
    answers: &mut Answers,
    source: &std::path::Path,
    save: bool,
) -> Result<(), AskError> {
    for key in Question::ALL {
        if key.applies(answers) && answers.get(key).is_none() {
            let value = key
                .default(layout, answers)
                .ok_or(AskError::Missing(key.name()))?;
            answers.set(key, &value);
        }
    }
    answers.check_all(source)?;
    if save {
        answers.save(layout)?;
    }
    Ok(())
}

/// Whether every answer that applies is there (and acceptable).
fn complete(answers: &Answers) -> bool {
    Question::ALL.into_iter().all(|key| {
        !key.applies(answers)
            || answers
                .get(key)
                .is_some_and(|v| key.check(v, answers).is_none())
    })
}

/// Asks at the terminal, saving each answer as it is given when `save` (not for `--dry-run`).
/// With complete saved answers, first offers to use them as they are.
pub fn interactively(layout: &Layout, answers: &mut Answers, save: bool) -> Result<(), AskError> {
    let theme = ColorfulTheme::default();
    if complete(answers)
        && Confirm::with_theme(&theme)
            .with_prompt(format!(
                "Use the saved answers ({}) as they are?",
                layout.answers().display()
            ))
            .default(true)
            .interact()?
    {
        return Ok(());
    }
    for key in Question::ALL {
        if !key.applies(answers) {
            continue;
        }
        let saved = answers.get(key).map(str::to_string);
        let default = saved.clone().or_else(|| key.default(layout, answers));
        let value = match key.kind() {
            Kind::Choice(options) => {
                let labels: Vec<String> = options
                    .iter()
                    .map(|(value, meaning)| format!("{value} — {meaning}"))
                    .collect();
                let at = default
                    .as_deref()
                    .and_then(|d| options.iter().position(|(v, _)| *v == d))
                    .unwrap_or(0);
                let mut at = at;
                loop {
                    let chosen = Select::with_theme(&theme)
                        .with_prompt(key.prompt())
                        .items(&labels)
                        .default(at)
                        .interact()?;
                    let value = options[chosen].0;
                    // A choice can still disagree with an earlier answer (Caddy with http://).
                    match key.check(value, answers) {
                        None => break value.to_string(),
                        Some(reason) => {
                            eprintln!("  {} {reason}", console::style("✗").red());
                            at = chosen;
                        }
                    }
                }
            }
            Kind::Text => {
                let snapshot = answers.clone();
                let mut input = Input::<String>::with_theme(&theme)
                    .with_prompt(key.prompt())
                    .validate_with(move |v: &String| match key.check(v, &snapshot) {
                        None => Ok(()),
                        Some(reason) => Err(reason),
                    });
                if let Some(default) = default {
                    input = input.default(default);
                }
                input.interact_text()?
            }
            Kind::Secret => ask_secret(&theme, key, saved.as_deref(), answers)?,
        };
        answers.set(key, &value);
        if save {
            answers.save(layout)?;
        }
    }
    Ok(())
}

fn ask_secret(
    theme: &ColorfulTheme,
    key: Question,
    saved: Option<&str>,
    answers: &Answers,
) -> Result<String, AskError> {
    let prompt = match saved {
        Some(_) => format!("{} (Enter keeps the saved one)", key.prompt()),
        None => key.prompt().to_string(),
    };
    loop {
        let typed = Password::with_theme(theme)
            .with_prompt(&prompt)
            .allow_empty_password(true)
            .interact()?;
        let value = match (typed.is_empty(), saved) {
            (true, Some(saved)) => saved.to_string(),
            _ => typed,
        };
        match key.check(&value, answers) {
            None => return Ok(value),
            Some(reason) => eprintln!("  {} {reason}", console::style("✗").red()),
        }
    }
}
