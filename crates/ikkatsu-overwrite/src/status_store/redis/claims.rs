//! Cooperating runs on [`RedisStatusStore`]: a hash of runs `ikkatsu-runs:{NAMESPACE}`
//! (token → the run as JSON) with their expiries in `ikkatsu-run-expiry:{NAMESPACE}`
//! (token → Unix milliseconds), and a hash of claims `ikkatsu-claims:{NAMESPACE}` (path →
//! `token` newline `the file as claimed`). The braces are a hash tag: in a Redis Cluster
//! the three keys share a slot, so each script below touches one slot.
//!
//! Claiming a batch is one Lua script. Recording claimed files is one script on a single
//! server (claims dropped and records written together). In a cluster the records live in
//! the slots of their buckets, so a script cannot write them with the claims: the claims
//! still held are checked first (the fence), the records are written per bucket, then the
//! claims are dropped — a run whose claim expires between the check and the write may
//! record a file another run has just claimed, the same window as a run cut off after its
//! last heartbeat (ADR 0010).

use chrono::Utc;
use ikkatsu_core::{Error, ErrorKind, Result};
use ikkatsu_storage::FileInfo;

use super::{KeyLayout, RedisStatusStore, to_json};
use crate::status_store::{Claimed, Lease};

/// KEYS: claims, expiries. ARGV: token, now (ms), then path and claimed JSON pairs.
/// Returns path, taken-from (or '') pairs of the granted files.
const CLAIM: &str = r"
local out = {}
for i = 3, #ARGV, 2 do
  local path = ARGV[i]
  local cur = redis.call('HGET', KEYS[1], path)
  local grant = false
  local prev = ''
  if not cur then
    grant = true
  else
    local sep = string.find(cur, '\n', 1, true)
    local tok = string.sub(cur, 1, sep - 1)
    if tok == ARGV[1] then
      grant = true
    else
      local exp = tonumber(redis.call('HGET', KEYS[2], tok) or '0') or 0
      if exp < tonumber(ARGV[2]) then
        grant = true
        prev = string.sub(cur, sep + 1)
      end
    end
  end
  if grant then
    redis.call('HSET', KEYS[1], path, ARGV[1] .. '\n' .. ARGV[i + 1])
    table.insert(out, path)
    table.insert(out, prev)
  end
end
return out
";

/// KEYS: claims, then the status key of each file. ARGV: token, now (RFC 3339), then path
/// and uploaded JSON pairs. Records the files still claimed by the token; returns the
/// paths that were not.
const DONE: &str = r"
local lost = {}
for i = 3, #ARGV, 2 do
  local path = ARGV[i]
  local key = KEYS[(i - 1) / 2 + 1]
  local cur = redis.call('HGET', KEYS[1], path)
  local tok = cur and string.sub(cur, 1, (string.find(cur, '\n', 1, true) or 1) - 1)
  if tok == ARGV[1] then
    redis.call('HDEL', KEYS[1], path)
    redis.call('DEL', key)
    redis.call('HSET', key, 'state', 'done', 'uploaded', ARGV[i + 1], 'errors', 0, 'updated', ARGV[2])
  else
    table.insert(lost, path)
  end
end
return lost
";

/// KEYS: claims. ARGV: token, then paths. Returns the paths claimed by the token.
const HELD: &str = r"
local held = {}
for i = 2, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. '\n' then
    table.insert(held, ARGV[i])
  end
end
return held
";

/// KEYS: claims. ARGV: token, then paths. Drops the token's claims of the paths.
const RELEASE: &str = r"
for i = 2, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. '\n' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 0
";

/// KEYS: runs, expiries, claims. ARGV: token. Drops the run and its claims.
const LEAVE: &str = r"
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local all = redis.call('HGETALL', KEYS[3])
local prefix = ARGV[1] .. '\n'
for i = 1, #all, 2 do
  if string.sub(all[i + 1], 1, #prefix) == prefix then
    redis.call('HDEL', KEYS[3], all[i])
  end
end
return 0
";

/// KEYS: runs, expiries. ARGV: token, run JSON, expiry, renew (1/0). Returns 1, or 0 when
/// renewing a run that is not registered.
const JOIN: &str = r"
if ARGV[4] == '1' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
";

impl RedisStatusStore {
    fn coop_key(&self, what: &str) -> String {
        format!("ikkatsu-{what}:{{{}}}", self.options.namespace)
    }

    pub(super) async fn redis_join_run(&self, me: &Lease, renew: bool) -> Result<bool> {
        let mut connection = self.connection.clone();
        let joined: i64 = redis::Script::new(JOIN)
            .key(self.coop_key("runs"))
            .key(self.coop_key("run-expiry"))
            .arg(&me.token)
            .arg(me.to_json()?)
            .arg(me.expires().timestamp_millis())
            .arg(if renew { "1" } else { "0" })
            .invoke_async(&mut connection)
            .await
            .map_err(|err| self.error("registering the run", err))?;
        Ok(joined == 1)
    }

    pub(super) async fn redis_runs(&self) -> Result<Vec<Lease>> {
        let mut connection = self.connection.clone();
        // On the master, as a script: a replica may not have seen a run that just joined.
        let runs: Vec<String> = redis::Script::new("return redis.call('HVALS', KEYS[1])")
            .key(self.coop_key("runs"))
            .invoke_async(&mut connection)
            .await
            .map_err(|err| self.error("listing the runs", err))?;
        runs.iter()
            .map(|text| Lease::from_json(&self.describe, text))
            .collect()
    }

    pub(super) async fn redis_leave_run(&self, token: &str) -> Result<()> {
        let mut connection = self.connection.clone();
        redis::Script::new(LEAVE)
            .key(self.coop_key("runs"))
            .key(self.coop_key("run-expiry"))
            .key(self.coop_key("claims"))
            .arg(token)
            .invoke_async::<i64>(&mut connection)
            .await
            .map_err(|err| self.error("unregistering the run", err))?;
        Ok(())
    }

    pub(super) async fn redis_claim(
        &self,
        me: &Lease,
        files: Vec<FileInfo>,
    ) -> Result<Vec<Claimed>> {
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let code = redis::Script::new(CLAIM);
        let mut script = code.key(self.coop_key("claims"));
        script
            .key(self.coop_key("run-expiry"))
            .arg(&me.token)
            .arg(Utc::now().timestamp_millis());
        for file in &files {
            script.arg(&file.path).arg(to_json(file)?);
        }
        let mut connection = self.connection.clone();
        let granted: Vec<String> = script
            .invoke_async(&mut connection)
            .await
            .map_err(|err| self.error("claiming files", err))?;
        let mut taken = std::collections::HashMap::new();
        for pair in granted.chunks(2) {
            if let [path, prev] = pair {
                taken.insert(path.clone(), prev.clone());
            }
        }
        let mut out = Vec::new();
        for file in files {
            let Some(prev) = taken.remove(&file.path) else {
                continue;
            };
            let taken_from = if prev.is_empty() {
                None
            } else {
                Some(serde_json::from_str(&prev).map_err(|err| {
                    Error::new(
                        ErrorKind::Parse,
                        format!(
                            "status store {}: the claim of `{}` holds invalid file info: {err}",
                            self.describe, file.path
                        ),
                    )
                })?)
            };
            out.push(Claimed { file, taken_from });
        }
        Ok(out)
    }

    pub(super) async fn redis_report_done_claimed(
        &self,
        token: &str,
        done: &[(FileInfo, FileInfo)],
    ) -> Result<Vec<String>> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        if matches!(self.layout, KeyLayout::Cluster { .. }) {
            return self.cluster_report_done_claimed(token, done).await;
        }
        let code = redis::Script::new(DONE);
        let mut script = code.key(self.coop_key("claims"));
        script.arg(token).arg(Utc::now().to_rfc3339());
        for (source, uploaded) in done {
            script
                .key(self.key(&source.path))
                .arg(&source.path)
                .arg(to_json(uploaded)?);
        }
        let mut connection = self.connection.clone();
        script
            .invoke_async(&mut connection)
            .await
            .map_err(|err| self.error("recording claimed files", err))
    }

    /// [`Self::redis_report_done_claimed`] in a cluster: fence, record per bucket, release.
    async fn cluster_report_done_claimed(
        &self,
        token: &str,
        done: &[(FileInfo, FileInfo)],
    ) -> Result<Vec<String>> {
        let (held_code, release_code) = (redis::Script::new(HELD), redis::Script::new(RELEASE));
        let claims_script = |code| self.claims_invocation(code, token, done);
        let mut connection = self.connection.clone();
        let held: std::collections::HashSet<String> = claims_script(&held_code)
            .invoke_async::<Vec<String>>(&mut connection)
            .await
            .map_err(|err| self.error("checking claimed files", err))?
            .into_iter()
            .collect();
        let (ours, lost): (Vec<_>, Vec<_>) = done
            .iter()
            .cloned()
            .partition(|(source, _)| held.contains(&source.path));
        self.record_done(&ours, "recording claimed files").await?;
        claims_script(&release_code)
            .invoke_async::<i64>(&mut connection)
            .await
            .map_err(|err| self.error("releasing claimed files", err))?;
        Ok(lost.into_iter().map(|(source, _)| source.path).collect())
    }

    /// `code` on the claims key with the token and the paths of `done` as arguments.
    fn claims_invocation<'a>(
        &self,
        code: &'a redis::Script,
        token: &str,
        done: &[(FileInfo, FileInfo)],
    ) -> redis::ScriptInvocation<'a> {
        let mut invocation = code.key(self.coop_key("claims"));
        invocation.arg(token);
        for (source, _) in done {
            invocation.arg(&source.path);
        }
        invocation
    }
}
