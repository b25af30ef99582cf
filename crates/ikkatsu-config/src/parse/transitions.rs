//! Transitions: `{on, to | end | fail | stop, restart, exit-code}`.

use ikkatsu_core::TransitionTarget;

use super::Parser;
use crate::error::Position;
use crate::model::TransitionDefinition;
use crate::node::Node;

pub(crate) const TRANSITION_KEYS: &[&str] =
    &["on", "to", "end", "fail", "stop", "restart", "exit-code"];

impl Parser<'_> {
    pub(crate) fn transitions(&mut self, node: &Node, step: &str) -> Vec<TransitionDefinition> {
        let Some(items) = self.list(node, "transitions", step) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let what = format!("transition #{} of {step}", i + 1);
            let Some(f) = self.map(item, &what, TRANSITION_KEYS) else {
                continue;
            };
            let on = self
                .required(&f, "on", &what)
                .and_then(|n| self.name(n, "on", &what));
            let exit_code = f
                .get("exit-code")
                .and_then(|n| self.name(n, "exit-code", &what))
                .map(|t| t.value);
            let targets: Vec<&str> = ["to", "end", "fail", "stop"]
                .into_iter()
                .filter(|k| f.has(k))
                .collect();
            let flag = |p: &mut Self, key: &str| {
                let value = f.get(key).and_then(|n| p.boolean(n, key, &what));
                if value == Some(false) {
                    p.error(
                        f.key_position(key),
                        format!(
                            "`{key}: false` in {what} has no meaning: write `{key}: true` or remove it"
                        ),
                    );
                }
                value.unwrap_or(false)
            };
            let (target, target_position) = match targets.as_slice() {
                ["to"] => {
                    let to = f.get("to").and_then(|n| self.name(n, "to", &what));
                    if exit_code.is_some() {
                        self.error(
                            f.key_position("exit-code"),
                            format!("`exit-code` in {what} needs `end`, `fail` or `stop`"),
                        );
                    }
                    match to {
                        Some(to) => (Some(TransitionTarget::To(to.value)), to.position),
                        None => (None, Position::UNKNOWN),
                    }
                }
                ["end"] => (
                    flag(self, "end").then_some(TransitionTarget::End { exit_code }),
                    Position::UNKNOWN,
                ),
                ["fail"] => (
                    flag(self, "fail").then_some(TransitionTarget::Fail { exit_code }),
                    Position::UNKNOWN,
                ),
                ["stop"] => {
                    let restart = f
                        .get("restart")
                        .and_then(|n| self.name(n, "restart", &what));
                    let position = restart.as_ref().map(|r| r.position).unwrap_or_default();
                    (
                        flag(self, "stop").then_some(TransitionTarget::Stop {
                            restart: restart.map(|r| r.value),
                            exit_code,
                        }),
                        position,
                    )
                }
                [] => {
                    self.error(
                        item.position(),
                        format!("{what} needs one of `to`, `end`, `fail` or `stop`"),
                    );
                    (None, Position::UNKNOWN)
                }
                [_, second, ..] => {
                    self.error(
                        f.key_position(second),
                        format!(
                            "{what} has both `{}` and `{second}`: give only one",
                            targets[0]
                        ),
                    );
                    (None, Position::UNKNOWN)
                }
                [_] => (None, Position::UNKNOWN),
            };
            if f.has("restart") && !f.has("stop") {
                self.error(
                    f.key_position("restart"),
                    format!("`restart` in {what} needs `stop: true`"),
                );
            }
            if let (Some(on), Some(target)) = (on, target) {
                out.push(TransitionDefinition {
                    on,
                    target,
                    target_position,
                });
            }
        }
        out
    }
}
