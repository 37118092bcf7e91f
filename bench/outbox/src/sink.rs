//! An SMTP server on loopback that accepts every message, keeps none and
//! counts them: enough of the protocol for lettre (EHLO, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT), so that what is timed is the sending side.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// Longest line accepted, command or message, as in RFC 5321's limits with room to spare.
const MAX_LINE: usize = 8 * 1024;
/// Longest message accepted; larger ones are refused, not stored anyway.
const MAX_MESSAGE: usize = 1024 * 1024;
/// A client silent this long is dropped, so no connection outlives the run.
const IDLE: Duration = Duration::from_secs(30);
/// Connections served at once; a run opens a handful.
const MAX_CONNECTIONS: usize = 256;
/// Commands answered on one connection: far more than a run sends over one.
const MAX_COMMANDS: u64 = 50_000_000;

pub struct Sink {
    pub addr: SocketAddr,
    received: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Sink {
    pub async fn start() -> std::io::Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept(listener, received.clone(), stopped));
        Ok(Sink { addr, received, stop, task })
    }

    /// Messages accepted so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes every connection.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept(listener: TcpListener, received: Arc<AtomicU64>, mut stopped: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
        let received = received.clone();
        let stopped = stopped.clone();
        connections.spawn(async move {
            let _slot = slot;
            let _ = serve(stream, received, stopped).await;
        });
        // Finished connections are reaped as we go.
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

async fn serve(stream: TcpStream, received: Arc<AtomicU64>, mut stopped: watch::Receiver<bool>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::new(write);
    let mut line = Vec::with_capacity(256);
    writer.write_all(b"220 127.0.0.1 sink ESMTP\r\n").await?;
    writer.flush().await?;
    for _ in 0..MAX_COMMANDS {
        line.clear();
        if !read_line(&mut reader, &mut line, &mut stopped).await? {
            return Ok(());
        }
        let verb = line.iter().take(4).map(u8::to_ascii_uppercase).collect::<Vec<_>>();
        let reply: &[u8] = match verb.as_slice() {
            b"EHLO" => b"250-127.0.0.1\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            b"HELO" | b"MAIL" | b"RCPT" | b"RSET" | b"NOOP" => b"250 OK\r\n",
            b"DATA" => {
                writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                writer.flush().await?;
                match read_message(&mut reader, &mut line, &mut stopped).await? {
                    Some(true) => {
                        received.fetch_add(1, Ordering::SeqCst);
                        b"250 OK queued and dropped\r\n"
                    }
                    Some(false) => b"552 Message too large\r\n",
                    None => return Ok(()),
                }
            }
            b"QUIT" => {
                writer.write_all(b"221 Bye\r\n").await?;
                writer.flush().await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        writer.write_all(reply).await?;
        writer.flush().await?;
    }
    Ok(())
}

/// Reads one line into `line`; false at the end of the stream, on a stop,
/// or when the client has been idle too long.
async fn read_line(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut Vec<u8>,
    stopped: &mut watch::Receiver<bool>,
) -> std::io::Result<bool> {
    if reader.buffer().is_empty() {
        // lettre writes a message's closing "." line on its own, and leaves
        // Nagle's algorithm on: it holds that line until the message before it
        // is acknowledged. A delayed acknowledgement would stall every message
        // by tens of milliseconds, so this side acknowledges at once.
        let _ = socket2::SockRef::from(reader.get_ref().as_ref()).set_tcp_quickack(true);
    }
    let mut limited = (&mut *reader).take(MAX_LINE as u64);
    let read = tokio::select! {
        read = tokio::time::timeout(IDLE, limited.read_until(b'\n', line)) => read,
        _ = stopped.changed() => return Ok(false),
    };
    match read {
        Ok(Ok(0)) | Err(_) => Ok(false),
        Ok(Ok(_)) if !line.ends_with(b"\n") => {
            Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "line too long"))
        }
        Ok(Ok(_)) => Ok(true),
        Ok(Err(err)) => Err(err),
    }
}

/// Reads a message up to its closing dot line: Some(true) when it was
/// within bounds, Some(false) when too large, None when the client went away.
async fn read_message(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut Vec<u8>,
    stopped: &mut watch::Receiver<bool>,
) -> std::io::Result<Option<bool>> {
    let mut size = 0usize;
    loop {
        line.clear();
        if !read_line(reader, line, stopped).await? {
            return Ok(None);
        }
        if line.as_slice() == b".\r\n" || line.as_slice() == b".\n" {
            return Ok(Some(size <= MAX_MESSAGE));
        }
        size = size.saturating_add(line.len());
        if size > 16 * MAX_MESSAGE {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "message far too large"));
        }
    }
}
