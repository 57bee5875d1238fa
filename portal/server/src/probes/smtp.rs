//! The mail server's greeting on port 25, and whether it offers STARTTLS (the only way other
//! mail servers encrypt what they deliver).

use std::{net::SocketAddr, time::Duration};

use chatmail_shared::probe_report::SmtpProbe;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// Longest reply line read; SMTP allows 512 bytes, leave room.
const MAX_LINE: usize = 2048;

pub async fn probe(address: SocketAddr, timeout: Duration) -> SmtpProbe {
    match tokio::time::timeout(timeout * 2, talk(address)).await {
        Ok(Ok(probe)) => probe,
        Ok(Err(problem)) => SmtpProbe {
            banner: None,
            starttls: false,
            problem: Some(problem),
        },
        Err(_) => SmtpProbe {
            banner: None,
            starttls: false,
            problem: Some("the mail server did not greet within the time limit".into()),
        },
    }
}

async fn talk(address: SocketAddr) -> Result<SmtpProbe, String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("no connection: {e}"))?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let greeting = reply(&mut reader).await?;
    let banner = greeting.first().cloned();
    if !banner
        .as_deref()
        .is_some_and(|line| line.starts_with("220"))
    {
        return Ok(SmtpProbe {
            banner,
            starttls: false,
            problem: Some("the greeting is not a mail server's (\u{201c}220 …\u{201d})".into()),
        });
    }
    write
        .write_all(b"EHLO portal-probe.invalid\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let ehlo = reply(&mut reader).await?;
    let starttls = ehlo.iter().any(|line| {
        line.get(4..)
            .is_some_and(|keyword| keyword.trim().eq_ignore_ascii_case("STARTTLS"))
    });
    let _ = write.write_all(b"QUIT\r\n").await;
    Ok(SmtpProbe {
        banner,
        starttls,
        problem: (!starttls).then(|| "the mail server does not offer STARTTLS".to_string()),
    })
}

/// One (possibly multi-line) SMTP reply.
async fn reply(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let read = (&mut *reader)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("the connection closed before a reply".into());
        }
        let line = line.trim_end().to_string();
        let last = line.as_bytes().get(3) != Some(&b'-');
        lines.push(line);
        if last || lines.len() > 100 {
            return Ok(lines);
        }
    }
}
