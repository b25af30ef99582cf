//! Flows: named elements (steps, decisions, splits) joined by transitions on exit codes.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use super::JobExecutionDecider;
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

/// Orders two exit-code patterns from the most specific to the most generic, as Spring
/// Batch's `DefaultStateTransitionComparator` does: a pattern without `*` before one with;
/// more `*` before fewer; fewer `?` before more; then, for patterns with wildcards, the
/// longer first; then alphabetically. Hence `foo` and `bar` (exact) before `fo?`, `bar??`,
/// `foo??`, `?o?`, `???`, `*foo*`, `*f*`, `foo*`, `*`.
pub fn pattern_specificity(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let stars = |p: &str| p.matches('*').count();
    let marks = |p: &str| p.matches('?').count();
    let (a_stars, b_stars) = (stars(a), stars(b));
    match (a_stars, b_stars) {
        (0, 1..) => return Ordering::Less,
        (1.., 0) => return Ordering::Greater,
        (1.., 1..) if a_stars != b_stars => return b_stars.cmp(&a_stars),
        _ => {}
    }
    let (a_marks, b_marks) = (marks(a), marks(b));
    if a_marks != b_marks {
        return a_marks.cmp(&b_marks);
    }
    if a.len() != b.len() && (a_stars > 0 || a_marks > 0) {
        return b.len().cmp(&a.len());
    }
    a.cmp(b)
}

/// Sorts `transitions` from the most specific pattern to the most generic (see
/// [`pattern_specificity`]); transitions with the same pattern keep their order.
pub fn sort_by_specificity(transitions: &mut [Transition]) {
    transitions.sort_by(|a, b| pattern_specificity(&a.on, &b.on));
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

/// Where an element goes when it is done: its transitions (most specific pattern first)
/// and its default next element.
#[derive(Clone, Default)]
pub struct Routing {
    /// Transitions, sorted by [`sort_by_specificity`]: the first whose pattern matches the
    /// exit code wins.
    pub transitions: Vec<Transition>,
    /// Where to go when no transition matches and the element did not fail or stop.
    pub next: Option<String>,
}

/// An element of a flow.
#[derive(Clone)]
#[non_exhaustive]
pub enum FlowElement {
    /// A step.
    Step {
        /// The step.
        step: Arc<dyn Step>,
        /// Where to go after it, on its exit code.
        routing: Routing,
        /// Keys copied from the step's context to the job's context when the step completes.
        promote_keys: Vec<String>,
        /// Listeners called before and after the step.
        listeners: Vec<Arc<dyn StepExecutionListener>>,
    },
    /// A decision: the decider's status is the exit code the transitions are chosen on.
    Decision {
        /// Decides.
        decider: Arc<dyn JobExecutionDecider>,
        /// Where to go, on the decided status.
        routing: Routing,
    },
    /// A split: flows run in parallel, joined before the split is left. Any flow failing
    /// fails the split (exit code `FAILED`); else any flow stopping stops it; else it is
    /// `COMPLETED`.
    Split {
        /// The flows run in parallel. Their element names are unique within the job.
        flows: Vec<Flow>,
        /// Where to go, on the split's exit code.
        routing: Routing,
    },
}

impl FlowElement {
    /// A step element with no transitions.
    pub fn step(step: Arc<dyn Step>) -> Self {
        FlowElement::Step {
            step,
            routing: Routing::default(),
            promote_keys: Vec::new(),
            listeners: Vec::new(),
        }
    }

    /// A decision element with no transitions.
    pub fn decision(decider: Arc<dyn JobExecutionDecider>) -> Self {
        FlowElement::Decision {
            decider,
            routing: Routing::default(),
        }
    }

    /// A split element running `flows` in parallel, with no transitions.
    pub fn split(flows: Vec<Flow>) -> Self {
        FlowElement::Split {
            flows,
            routing: Routing::default(),
        }
    }

    /// Where the element goes when it is done.
    pub fn routing(&self) -> &Routing {
        match self {
            FlowElement::Step { routing, .. }
            | FlowElement::Decision { routing, .. }
            | FlowElement::Split { routing, .. } => routing,
        }
    }

    fn routing_mut(&mut self) -> &mut Routing {
        match self {
            FlowElement::Step { routing, .. }
            | FlowElement::Decision { routing, .. }
            | FlowElement::Split { routing, .. } => routing,
        }
    }

    /// Sets the transitions; they are tried from the most specific pattern to the most
    /// generic, whatever their order here (see [`pattern_specificity`]).
    pub fn with_transitions(mut self, mut new: Vec<Transition>) -> Self {
        sort_by_specificity(&mut new);
        self.routing_mut().transitions = new;
        self
    }

    /// Sets the element to go to when no transition matches and the element did not fail.
    pub fn with_next(mut self, new: Option<String>) -> Self {
        self.routing_mut().next = new;
        self
    }

    /// Sets the keys promoted from the step's context to the job's context (steps only).
    pub fn with_promote_keys(mut self, keys: Vec<String>) -> Self {
        if let FlowElement::Step { promote_keys, .. } = &mut self {
            *promote_keys = keys;
        }
        self
    }

    /// Adds step listeners (steps only).
    pub fn with_listeners(mut self, new: Vec<Arc<dyn StepExecutionListener>>) -> Self {
        if let FlowElement::Step { listeners, .. } = &mut self {
            listeners.extend(new);
        }
        self
    }

    fn targets(&self) -> Vec<&str> {
        let routing = self.routing();
        routing
            .transitions
            .iter()
            .filter_map(|t| match &t.target {
                TransitionTarget::To(to) => Some(to.as_str()),
                TransitionTarget::Stop {
                    restart: Some(r), ..
                } => Some(r.as_str()),
                _ => None,
            })
            .chain(routing.next.as_deref())
            .collect()
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
            let element = FlowElement::step(step).with_next(names.get(i + 1).cloned());
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

    /// The step named `name`, in this flow or the flows of its splits.
    pub fn find_step(&self, name: &str) -> Option<&Arc<dyn Step>> {
        self.elements.values().find_map(|element| match element {
            FlowElement::Step { step, .. } if step.name() == name => Some(step),
            FlowElement::Split { flows, .. } => flows.iter().find_map(|f| f.find_step(name)),
            _ => None,
        })
    }

    /// The names of the steps of this flow and of the flows of its splits.
    pub fn step_names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        for name in self.element_names() {
            match &self.elements[name] {
                FlowElement::Step { step, .. } => names.push(step.name()),
                FlowElement::Split { flows, .. } => {
                    names.extend(flows.iter().flat_map(Flow::step_names));
                }
                FlowElement::Decision { .. } => {}
            }
        }
        names
    }

    /// Checks that the start element and every transition target exist, in this flow and
    /// the flows of its splits, and that no two steps share a name.
    pub fn validate(&self) -> Result<()> {
        self.validate_targets()?;
        let mut names = self.step_names();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(Error::config(format!(
                "two steps are named `{}`: step names must be unique within a job (splits \
                 included)",
                pair[0]
            )));
        }
        Ok(())
    }

    fn validate_targets(&self) -> Result<()> {
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
            if let FlowElement::Split { flows, .. } = &self.elements[name] {
                if flows.is_empty() {
                    return Err(Error::config(format!("split `{name}` has no flows")));
                }
                for flow in flows {
                    flow.validate_targets()
                        .map_err(|err| err.context(format!("in a flow of split `{name}`")))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spring Batch's documented order, most generic first.
    #[test]
    fn transitions_are_ordered_by_specificity_as_spring_batch_orders_them() {
        let generic_first = [
            "*", "foo*", "*f*", "*foo*", "???", "?o?", "foo??", "bar??", "fo?", "foo", "bar",
        ];
        for (i, a) in generic_first.iter().enumerate() {
            for (j, b) in generic_first.iter().enumerate() {
                assert_eq!(
                    pattern_specificity(a, b),
                    j.cmp(&i),
                    "{a} vs {b}: {a} is {} generic",
                    if i < j { "more" } else { "less" }
                );
            }
        }
        let mut transitions: Vec<Transition> = ["*", "COMPLETED*", "COMPLETED", "C?MPLETED"]
            .into_iter()
            .map(Transition::end)
            .collect();
        sort_by_specificity(&mut transitions);
        let order: Vec<&str> = transitions.iter().map(|t| t.on.as_str()).collect();
        assert_eq!(order, ["COMPLETED", "C?MPLETED", "COMPLETED*", "*"]);

        // The same pattern twice: the first written stays first.
        let mut same = vec![
            Transition::to("X", "first"),
            Transition::end("*"),
            Transition::to("X", "second"),
        ];
        sort_by_specificity(&mut same);
        assert_eq!(same[0].target, TransitionTarget::To("first".into()));
        assert_eq!(same[1].target, TransitionTarget::To("second".into()));
    }

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
