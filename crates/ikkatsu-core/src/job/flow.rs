//! Flows: named elements joined by transitions on exit codes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::listener::StepExecutionListener;
use crate::step::Step;

/// Where a transition leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionTarget {
    /// Continue with the named element.
    To(String),
    /// End the job as COMPLETED, with this exit code (default: `COMPLETED`).
    End {
        /// Exit code of the job.
        exit_code: Option<String>,
    },
    /// End the job as FAILED (restartable), with this exit code (default: `FAILED`).
    Fail {
        /// Exit code of the job.
        exit_code: Option<String>,
    },
    /// End the job as STOPPED; a restart begins at `restart` (default: the element after
    /// which it stopped is re-evaluated from the start of the flow).
    Stop {
        /// Element to restart at.
        restart: Option<String>,
        /// Exit code of the job (default: `STOPPED`).
        exit_code: Option<String>,
    },
}

/// `on: PATTERN` → target. Patterns match exit codes; `*` matches any run of characters and
/// `?` one character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Exit-code pattern.
    pub on: String,
    /// Where to go.
    pub target: TransitionTarget,
}

impl Transition {
    /// `on` → `to`.
    pub fn to(on: impl Into<String>, to: impl Into<String>) -> Self {
        Transition {
            on: on.into(),
            target: TransitionTarget::To(to.into()),
        }
    }

    /// `on` → end.
    pub fn end(on: impl Into<String>) -> Self {
        Transition {
            on: on.into(),
            target: TransitionTarget::End { exit_code: None },
        }
    }

    /// `on` → fail.
    pub fn fail(on: impl Into<String>) -> Self {
        Transition {
            on: on.into(),
            target: TransitionTarget::Fail { exit_code: None },
        }
    }

    /// `on` → stop (restart at `restart`).
    pub fn stop(on: impl Into<String>, restart: Option<String>) -> Self {
        Transition {
            on: on.into(),
            target: TransitionTarget::Stop {
                restart,
                exit_code: None,
            },
        }
    }
}

/// Whether `exit_code` matches `pattern` (`*` any run, `?` one character).
pub fn exit_code_matches(pattern: &str, exit_code: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = exit_code.chars().collect();
    go(&p, &s)
}

/// An element of a flow.
#[derive(Clone)]
#[non_exhaustive]
pub enum FlowElement {
    /// A step.
    Step {
        /// The step.
        step: Arc<dyn Step>,
        /// Transitions, tried in order; the first whose pattern matches the exit code wins.
        transitions: Vec<Transition>,
        /// Where to go when no transition matches and the step did not fail.
        next: Option<String>,
        /// Keys copied from the step's context to the job's context when the step completes.
        promote_keys: Vec<String>,
        /// Listeners called before and after the step.
        listeners: Vec<Arc<dyn StepExecutionListener>>,
    },
}

impl FlowElement {
    /// A step element with no transitions.
    pub fn step(step: Arc<dyn Step>) -> Self {
        FlowElement::Step {
            step,
            transitions: Vec::new(),
            next: None,
            promote_keys: Vec::new(),
            listeners: Vec::new(),
        }
    }

    /// Sets the transitions (tried in order).
    pub fn with_transitions(mut self, new: Vec<Transition>) -> Self {
        let FlowElement::Step { transitions, .. } = &mut self;
        *transitions = new;
        self
    }

    /// Sets the element to go to when no transition matches and the step did not fail.
    pub fn with_next(mut self, new: Option<String>) -> Self {
        let FlowElement::Step { next, .. } = &mut self;
        *next = new;
        self
    }

    /// Sets the keys promoted from the step's context to the job's context.
    pub fn with_promote_keys(mut self, keys: Vec<String>) -> Self {
        let FlowElement::Step { promote_keys, .. } = &mut self;
        *promote_keys = keys;
        self
    }

    /// Adds step listeners.
    pub fn with_listeners(mut self, new: Vec<Arc<dyn StepExecutionListener>>) -> Self {
        let FlowElement::Step { listeners, .. } = &mut self;
        listeners.extend(new);
        self
    }

    fn targets(&self) -> Vec<&str> {
        match self {
            FlowElement::Step {
                transitions, next, ..
            } => transitions
                .iter()
                .filter_map(|t| match &t.target {
                    TransitionTarget::To(to) => Some(to.as_str()),
                    TransitionTarget::Stop {
                        restart: Some(r), ..
                    } => Some(r.as_str()),
                    _ => None,
                })
                .chain(next.as_deref())
                .collect(),
        }
    }
}

/// A flow: a start element and named elements.
#[derive(Clone)]
pub struct Flow {
    start: String,
    elements: HashMap<String, FlowElement>,
}

impl Flow {
    /// A flow starting at `start`.
    pub fn new(start: impl Into<String>, elements: HashMap<String, FlowElement>) -> Self {
        Flow {
            start: start.into(),
            elements,
        }
    }

    /// Steps run one after the other (each goes to the next unless it fails or stops).
    pub fn linear(steps: Vec<Arc<dyn Step>>) -> Result<Self> {
        let names: Vec<String> = steps.iter().map(|s| s.name().to_string()).collect();
        let start = names
            .first()
            .cloned()
            .ok_or_else(|| Error::config("a flow needs at least one step"))?;
        let mut elements = HashMap::new();
        for (i, step) in steps.into_iter().enumerate() {
            let name = names[i].clone();
            let element = FlowElement::Step {
                step,
                transitions: Vec::new(),
                next: names.get(i + 1).cloned(),
                promote_keys: Vec::new(),
                listeners: Vec::new(),
            };
            if elements.insert(name.clone(), element).is_some() {
                return Err(Error::config(format!(
                    "two steps are named `{name}`: step names must be unique within a job"
                )));
            }
        }
        Ok(Flow { start, elements })
    }

    /// The start element's name.
    pub fn start(&self) -> &str {
        &self.start
    }

    /// The element named `name`.
    pub fn element(&self, name: &str) -> Option<&FlowElement> {
        self.elements.get(name)
    }

    /// Names of all elements, sorted.
    pub fn element_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.elements.keys().map(String::as_str).collect();
        names.sort();
        names
    }

    /// Checks that the start element and every transition target exist.
    pub fn validate(&self) -> Result<()> {
        let known = self.element_names().join(", ");
        if !self.elements.contains_key(&self.start) {
            return Err(Error::config(format!(
                "start element `{}` does not exist (elements: {known})",
                self.start
            )));
        }
        let mut names: Vec<&String> = self.elements.keys().collect();
        names.sort();
        for name in names {
            for target in self.elements[name].targets() {
                if !self.elements.contains_key(target) {
                    return Err(Error::config(format!(
                        "element `{name}` has a transition to `{target}`, which does not exist (elements: {known})"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(exit_code_matches("*", "COMPLETED"));
        assert!(exit_code_matches("COMPLETED", "COMPLETED"));
        assert!(!exit_code_matches("COMPLETED", "FAILED"));
        assert!(exit_code_matches("COMPLETED*", "COMPLETED WITH SKIPS"));
        assert!(exit_code_matches("C?MPLETED", "COMPLETED"));
        assert!(!exit_code_matches("C?MPLETED", "CMPLETED"));
        assert!(exit_code_matches("*ED", "FAILED"));
    }
}
