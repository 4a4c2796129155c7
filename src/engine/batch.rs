//! Several read-only scripts in one round trip: each runs as its own
//! `sh -c SCRIPT` with stdin from /dev/null, exactly as the transport runs a
//! single command (so `exit`, `set -e`, `exec` and error messages behave the
//! same), and the host sends back every exit status and the byte counts of
//! every stdout and stderr, then all their bytes hex-encoded. Hex because
//! the transport hands output over as lossy UTF-8: byte counts would not
//! survive a non-UTF-8 byte, hex digits do, and no output can be mistaken
//! for the framing whatever it contains.

use super::host::{CmdOutput, Host, HostError};
use crate::shell::quote;

/// The most the outputs of one batch may hold together (raw bytes; about
/// three times that travels as hex). Far above what facts print; a batch
/// over it is refused whole, never cut short.
pub const MAX_BATCH_OUTPUT: u64 = 16 * 1024 * 1024;

const HEADER: &str = "OCFO-BATCH";
const TOO_LARGE: &str = "OCFO-BATCH-TOO-LARGE";
const DATA: &str = "OCFO-DATA";

/// The batch script for `scripts` (each as `Script::render` made it), with
/// `limit` as the output bound.
pub fn script(scripts: &[String], limit: u64) -> String {
    // The outputs are kept on /run (tmpfs, root-only folder) like the
    // transport's own: a file's old content read for a diff may be secret.
    let mut s = String::from(
        "# facts batch\n\
         umask 077\n\
         ocfo_b=$(mktemp -d /run/ocfo-batch.XXXXXX 2>/dev/null || mktemp -d) || exit 125\n\
         trap 'rm -rf -- \"$ocfo_b\"' EXIT\n\
         ocfo_st=\n",
    );
    // All at once: they only read, and a no-op deploy's time on the host is
    // mostly these scripts starting processes (`dpkg-query`, `stat`,
    // `systemctl show`), which overlap well.
    let mut files = String::new();
    let mut waits = String::new();
    for (i, text) in scripts.iter().enumerate() {
        s.push_str(&format!(
            "sh -c {} </dev/null >\"$ocfo_b/{i}.o\" 2>\"$ocfo_b/{i}.e\" & ocfo_p{i}=$!\n",
            quote(text)
        ));
        waits.push_str(&format!("wait $ocfo_p{i}; ocfo_st=\"$ocfo_st $?\"\n"));
        files.push_str(&format!(" {i}.o {i}.e"));
    }
    s.push_str(&waits);
    // At least two files, so `wc` always ends with its `total` line.
    s.push_str(&format!(
        "cd -- \"$ocfo_b\" || exit 125\n\
         ocfo_wc=$(LC_ALL=C wc -c --{files}) || exit 125\n\
         ocfo_t=${{ocfo_wc% total}}; ocfo_t=${{ocfo_t##*[!0-9]}}\n\
         if [ \"$ocfo_t\" -gt {limit} ]; then echo \"{TOO_LARGE} $ocfo_t\"; exit 0; fi\n\
         echo \"{HEADER}$ocfo_st\"\n\
         printf '%s\\n' \"$ocfo_wc\"\n\
         echo {DATA}\n\
         od -An -v -tx1 --{files}\n"
    ));
    s
}

/// Splits the batch's stdout into one output per script.
pub fn parse(n: usize, stdout: &str, limit: u64) -> Result<Vec<CmdOutput>, String> {
    let bad = |why: &str| Err(format!("unexpected facts batch output: {why}"));
    let mut lines = stdout.split_inclusive('\n');
    let first = lines.next().unwrap_or("").trim_end();
    if let Some(size) = first.strip_prefix(TOO_LARGE) {
        return Err(format!(
            "the facts of this run's tasks print {} bytes together, more than the batch limit of {limit}: nothing was cut, the batch was refused",
            size.trim()
        ));
    }
    let Some(statuses) = first.strip_prefix(HEADER) else {
        return bad("no header");
    };
    let statuses: Vec<i32> = match statuses
        .split_ascii_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
    {
        Ok(s) => s,
        Err(_) => return bad("exit statuses"),
    };
    if statuses.len() != n {
        return bad("wrong number of exit statuses");
    }
    let mut sizes = Vec::with_capacity(2 * n);
    for i in 0..2 * n {
        let want = format!("{}.{}", i / 2, if i % 2 == 0 { 'o' } else { 'e' });
        let line = lines.next().unwrap_or("");
        let mut words = line.split_ascii_whitespace();
        match (
            words.next().map(str::parse::<usize>),
            words.next(),
            words.next(),
        ) {
            (Some(Ok(size)), Some(name), None) if name == want => sizes.push(size),
            _ => return bad("sizes"),
        }
    }
    // The sizes are the host's word: a host that lies must get an error,
    // never an overflow or a slice out of bounds (a panic here would abort
    // the other node's run too).
    let Some(total) = sizes.iter().try_fold(0usize, |a, &b| a.checked_add(b)) else {
        return bad("sizes overflow");
    };
    if total as u64 > limit {
        return bad("more output than the limit");
    }
    match lines
        .next()
        .map(|l| l.split_ascii_whitespace().collect::<Vec<_>>())
    {
        Some(w) if w.len() == 2 && w[1] == "total" && w[0].parse() == Ok(total) => {}
        _ => return bad("total"),
    }
    if lines.next().map(str::trim_end) != Some(DATA) {
        return bad("no data marker");
    }
    let mut bytes = Vec::with_capacity(total);
    let mut high: Option<u8> = None;
    for line in lines {
        for c in line.bytes() {
            if c.is_ascii_whitespace() {
                if high.is_some() {
                    return bad("odd hex digit");
                }
                continue;
            }
            let Some(v) = (c as char).to_digit(16) else {
                return bad("not hex");
            };
            match high.take() {
                None => high = Some(v as u8),
                Some(_) if bytes.len() == total => return bad("more data than the sizes say"),
                Some(h) => bytes.push(h << 4 | v as u8),
            }
        }
    }
    if high.is_some() || bytes.len() != total {
        return bad("data length");
    }
    let mut rest = &bytes[..];
    let mut take = |len: usize| {
        let (a, b) = rest.split_at_checked(len)?;
        rest = b;
        Some(String::from_utf8_lossy(a).into_owned())
    };
    let mut outs = Vec::with_capacity(n);
    for (i, status) in statuses.into_iter().enumerate() {
        let (Some(stdout), Some(stderr)) = (take(sizes[2 * i]), take(sizes[2 * i + 1])) else {
            return bad("data length");
        };
        outs.push(CmdOutput {
            status: Some(status),
            stdout,
            stderr,
        });
    }
    Ok(outs)
}

/// The longest batch script sent as one: a script reaches `sh -c` as one
/// argument, and Linux refuses an argument over 128 KiB (`MAX_ARG_STRLEN`).
pub const MAX_BATCH_SCRIPT: usize = 100 * 1024;

/// What one script adds to the batch as the host's `sh -c` receives it
/// (quoted in the batch, the batch quoted again by the transport), with room
/// for its redirections and `wait` line.
fn weight(text: &str) -> usize {
    quote(&quote(text)).len() + 128
}

/// Runs `scripts` in as few round trips as fit (one, unless their text
/// passes [`MAX_BATCH_SCRIPT`]); one output per script, in order, with each
/// exit status as it is (the caller decides what a failure means).
pub async fn run_all<H: Host>(host: &H, scripts: &[String]) -> Result<Vec<CmdOutput>, HostError> {
    let mut outs = Vec::with_capacity(scripts.len());
    let mut start = 0;
    while start < scripts.len() {
        let mut end = start + 1;
        let mut size = 1024 + weight(&scripts[start]);
        while end < scripts.len() && size + weight(&scripts[end]) <= MAX_BATCH_SCRIPT {
            size += weight(&scripts[end]);
            end += 1;
        }
        outs.extend(run_one(host, &scripts[start..end]).await?);
        start = end;
    }
    Ok(outs)
}

async fn run_one<H: Host>(host: &H, scripts: &[String]) -> Result<Vec<CmdOutput>, HostError> {
    let text = script(scripts, MAX_BATCH_OUTPUT);
    let out = host.run(&text, None).await?;
    if !out.success() {
        return Err(HostError::command(host.name(), &text, &out));
    }
    parse(scripts.len(), &out.stdout, MAX_BATCH_OUTPUT).map_err(|message| HostError::Transport {
        host: host.name().to_string(),
        message,
    })
}

/// For fake hosts in tests: if `text` is a batch [`script`], the reply a
/// host would send, each script answered by `answer`.
#[cfg(test)]
pub fn fake_reply(text: &str, answer: impl Fn(&str) -> CmdOutput) -> Option<CmdOutput> {
    let mut rest = text.strip_prefix("# facts batch\n")?;
    rest = &rest[rest.find("\nsh -c ")? + 1..];
    let mut outs = Vec::new();
    while let Some(r) = rest.strip_prefix("sh -c ") {
        let (script, r) = unquote(r)?;
        let suffix = format!(
            " </dev/null >\"$ocfo_b/{i}.o\" 2>\"$ocfo_b/{i}.e\" & ocfo_p{i}=$!\n",
            i = outs.len()
        );
        rest = r.strip_prefix(suffix.as_str())?;
        outs.push(answer(&script));
    }
    let mut reply = String::from(HEADER);
    let mut sizes = String::new();
    let mut data = Vec::new();
    for (i, o) in outs.iter().enumerate() {
        reply.push_str(&format!(" {}", o.status.unwrap_or(137)));
        sizes.push_str(&format!(
            "{} {i}.o\n{} {i}.e\n",
            o.stdout.len(),
            o.stderr.len()
        ));
        data.extend_from_slice(o.stdout.as_bytes());
        data.extend_from_slice(o.stderr.as_bytes());
    }
    reply.push('\n');
    reply.push_str(&sizes);
    reply.push_str(&format!("{} total\n{DATA}\n", data.len()));
    for chunk in data.chunks(16) {
        for b in chunk {
            reply.push_str(&format!(" {b:02x}"));
        }
        reply.push('\n');
    }
    Some(CmdOutput {
        status: Some(0),
        stdout: reply,
        stderr: String::new(),
    })
}

/// The word [`quote`] made at the start of `s`, and what follows it.
#[cfg(test)]
fn unquote(s: &str) -> Option<(String, &str)> {
    if !s.starts_with('\'') {
        let end = s.find(' ')?;
        return Some((s[..end].to_string(), &s[end..]));
    }
    let mut word = String::new();
    let mut rest = s;
    loop {
        if let Some(r) = rest.strip_prefix("\\'") {
            word.push('\'');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('\'') {
            let end = r.find('\'')?;
            word.push_str(&r[..end]);
            rest = &r[end + 1..];
        } else {
            return Some((word, rest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::Script;

    /// The batch run by a real local `sh`, as the transport would run it.
    fn run_local(scripts: &[String], limit: u64) -> Result<Vec<CmdOutput>, String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script(scripts, limit))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse(scripts.len(), &String::from_utf8_lossy(&out.stdout), limit)
    }

    /// One script run alone, as the transport runs it.
    fn run_alone(script: &str) -> CmdOutput {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        CmdOutput {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[test]
    fn every_script_gets_exactly_its_own_output_and_status() {
        let scripts: Vec<String> = [
            // The framing's own words, and lines that look like `wc` output.
            Script::new(r#"printf 'OCFO-BATCH 0 0\nOCFO-DATA\n 3 0.o\n%s' "$1""#)
                .arg("total 9")
                .render(),
            // Bytes that are not UTF-8, a NUL, no final newline.
            Script::new(r#"printf 'a\377\000b\303'"#).render(),
            // Nothing at all.
            Script::new("true").render(),
            // A failure with stderr.
            Script::new(r#"echo out; echo "no such thing: $1" >&2; false"#)
                .arg("it's")
                .render(),
            // `exit` leaves only this script; the next one still runs.
            Script::new("echo before; exit 3; echo after").render(),
            // stdin is empty, as when the transport runs one script.
            Script::new("cat; echo read-done").render(),
            // A command that does not exist: the shell's own message.
            Script::new("no-such-command-ocfo-test").render(),
            // Positional parameters and `set -e` stay the script's own.
            Script::new("set -e\nshift\necho \"$#:$1\"\nfalse\necho unreachable")
                .args(["x", "y z", "w"])
                .render(),
        ]
        .into();
        let got = run_local(&scripts, MAX_BATCH_OUTPUT).unwrap();
        assert_eq!(got.len(), scripts.len());
        for (s, g) in scripts.iter().zip(&got) {
            assert_eq!(g, &run_alone(s), "script {s:?}");
        }
        assert_eq!(got[0].stdout, "OCFO-BATCH 0 0\nOCFO-DATA\n 3 0.o\ntotal 9");
        assert_eq!(got[1].stdout, "a\u{fffd}\0b\u{fffd}");
        assert_eq!(
            got[2],
            CmdOutput {
                status: Some(0),
                stdout: String::new(),
                stderr: String::new()
            }
        );
        assert_eq!(got[3].status, Some(1));
        assert_eq!(got[3].stderr, "no such thing: it's\n");
        assert_eq!(got[4].status, Some(3));
        assert_eq!(got[4].stdout, "before\n");
        assert_eq!(got[5].stdout, "read-done\n");
        assert_eq!(got[6].status, Some(127));
        assert!(got[6].stderr.contains("no-such-command-ocfo-test"));
        assert_eq!(got[7].stdout, "2:y z\n");
        assert_eq!(got[7].status, Some(1));
    }

    #[test]
    fn the_fake_reply_reads_like_the_real_one() {
        let scripts: Vec<String> = [
            Script::new(r#"printf '%s' "$1"; echo oops >&2; exit 4"#)
                .arg("it's a 'quoted' value")
                .render(),
            Script::new("echo plain").render(),
        ]
        .into();
        let fake = fake_reply(&script(&scripts, MAX_BATCH_OUTPUT), run_alone).unwrap();
        let fake = parse(2, &fake.stdout, MAX_BATCH_OUTPUT).unwrap();
        assert_eq!(fake, run_local(&scripts, MAX_BATCH_OUTPUT).unwrap());
        assert_eq!(fake[0].stdout, "it's a 'quoted' value");
        assert!(fake_reply("echo not a batch", run_alone).is_none());
    }

    /// A host that runs what it is sent with the local `sh`, as the
    /// transport does (`sh -c` of the quoted script), counting round trips.
    struct LocalSh(
        std::sync::atomic::AtomicUsize,
        std::sync::atomic::AtomicUsize,
    );

    impl Host for LocalSh {
        fn name(&self) -> &str {
            "local"
        }

        async fn run(&self, script: &str, _: Option<&[u8]>) -> Result<CmdOutput, HostError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // The longest argument on the way: the login shell's `-c`.
            let arg = format!("sh -c {}", quote(script)).len();
            self.1.fetch_max(arg, std::sync::atomic::Ordering::SeqCst);
            Ok(run_alone(script))
        }

        async fn put(&self, _: &str, _: &[u8], _: u32, _: &str, _: &str) -> Result<(), HostError> {
            unreachable!()
        }
    }

    #[tokio::test]
    async fn a_batch_too_long_for_one_argument_is_split() {
        // 300 scripts of ~1 KiB with quotes to escape: ~300 KiB of text.
        let filler = "echo 'x'; ".repeat(100);
        let scripts: Vec<String> = (0..300)
            .map(|i| {
                Script::new("printf '%s' \"$1\"; : \"$2\"")
                    .args([i.to_string(), filler.clone()])
                    .render()
            })
            .collect();
        let host = LocalSh(Default::default(), Default::default());
        let outs = run_all(&host, &scripts).await.unwrap();
        let trips = host.0.load(std::sync::atomic::Ordering::SeqCst);
        let longest = host.1.load(std::sync::atomic::Ordering::SeqCst);
        assert!(trips >= 2, "{trips} round trips");
        assert!(
            longest <= MAX_BATCH_SCRIPT,
            "{longest} bytes in one argument"
        );
        assert!(
            longest > MAX_BATCH_SCRIPT / 2,
            "chunks are filled: {longest}"
        );
        let got: Vec<String> = outs.into_iter().map(|o| o.stdout).collect();
        let want: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        assert_eq!(got, want);
        // Few small scripts: one round trip.
        let host = LocalSh(Default::default(), Default::default());
        run_all(&host, &scripts[..3]).await.unwrap();
        assert_eq!(host.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_single_script_works_too() {
        let got = run_local(&[Script::new("echo one").render()], MAX_BATCH_OUTPUT).unwrap();
        assert_eq!(got[0].stdout, "one\n");
    }

    #[test]
    fn output_over_the_limit_is_refused_not_cut() {
        let scripts = [
            Script::new("head -c 600 /dev/zero").render(),
            Script::new("echo small").render(),
        ];
        let err = run_local(&scripts, 500).unwrap_err();
        assert!(err.contains("606 bytes"), "{err}");
        assert!(err.contains("refused"), "{err}");
        assert!(run_local(&scripts, 606).is_ok());
    }

    #[test]
    fn damaged_framing_is_an_error() {
        let scripts = [
            Script::new("echo hi").render(),
            Script::new("true").render(),
        ];
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script(&scripts, MAX_BATCH_OUTPUT))
            .output()
            .unwrap();
        let good = String::from_utf8(out.stdout).unwrap();
        assert!(parse(2, &good, MAX_BATCH_OUTPUT).is_ok());
        assert!(parse(3, &good, MAX_BATCH_OUTPUT).is_err());
        // One hex digit lost, one too many, a size that lies.
        let cut = good.trim_end().strip_suffix("0a").unwrap().to_string() + "0";
        assert!(parse(2, &cut, MAX_BATCH_OUTPUT).is_err());
        assert!(parse(2, &format!("{good} 0a\n"), MAX_BATCH_OUTPUT).is_err());
        assert!(parse(2, &good.replacen("3 0.o", "2 0.o", 1), MAX_BATCH_OUTPUT).is_err());
        assert!(parse(2, "", MAX_BATCH_OUTPUT).is_err());
    }

    /// A reply whose sizes are `sizes`, whose total line says `total` and
    /// whose data is `data` (hex), as a lying host would send it.
    fn crafted(sizes: &[&str], total: &str, data: &str) -> String {
        let mut s = String::from("OCFO-BATCH 0\n");
        for (i, size) in sizes.iter().enumerate() {
            s.push_str(&format!("{size} 0.{}\n", if i == 0 { 'o' } else { 'e' }));
        }
        s.push_str(&format!("{total} total\nOCFO-DATA\n{data}\n"));
        s
    }

    #[test]
    fn a_lying_host_gets_an_error_not_a_panic() {
        let max = usize::MAX.to_string();
        let cases = [
            // Sizes whose sum wraps to 1, 0 or a small total: before, the
            // sum overflowed (a panic in debug builds) or, wrapped, passed
            // the total check and `split_at` panicked.
            (crafted(&[&max, "2"], "1", "41"), "sizes overflow"),
            (crafted(&[&max, "1"], "0", ""), "sizes overflow"),
            (
                crafted(&[&max, &max], "18446744073709551614", ""),
                "sizes overflow",
            ),
            // Sizes over the limit with little data.
            (crafted(&["999999999", "0"], "999999999", "41"), "limit"),
            // More hex than the sizes say: refused while decoding.
            (
                crafted(&["1", "0"], "1", &"41 ".repeat(10_000)),
                "more data",
            ),
            // Sizes that do not parse as sizes.
            (crafted(&["-1", "0"], "-1", ""), "sizes"),
            (crafted(&["99999999999999999999999", "0"], "0", ""), "sizes"),
        ];
        for (reply, why) in cases {
            let err = parse(1, &reply, MAX_BATCH_OUTPUT).unwrap_err();
            assert!(err.contains(why), "{reply:.200}: {err}");
        }
        // The same framing with honest sizes parses.
        let ok = parse(1, &crafted(&["1", "1"], "2", "41 42"), MAX_BATCH_OUTPUT).unwrap();
        assert_eq!((ok[0].stdout.as_str(), ok[0].stderr.as_str()), ("A", "B"));
    }
}
