//! Throwaway certificates made with `openssl`: a CA, a server certificate
//! with a chosen subjectAltName, and a client certificate signed by the CA
//! (plus, on request, a client certificate from another CA).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory holding `ca.pem`, `server.pem`/`server.key` and
/// `client.pem`/`client.key`; removed on drop.
pub struct Certs {
    pub dir: tempfile::TempDir,
    openssl: PathBuf,
}

impl Certs {
    /// Makes the CA and both leaves; `san` is the server's subjectAltName
    /// (`IP:127.0.0.1`, `DNS:metrics.app.svc`); the client's is `DNS:<client_cn>`.
    pub fn make(openssl: &Path, san: &str) -> Certs {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = Certs {
            dir,
            openssl: openssl.to_owned(),
        };
        certs.ca("ca");
        certs.leaf("ca", "server", "relay-test-server", san);
        certs.leaf("ca", "client", "relay-test-client", "DNS:relay-test-client");
        certs
    }

    /// The path of a file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The path as a string, for configs.
    pub fn file(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        let made = Command::new(&self.openssl)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl");
        assert!(
            made.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }

    /// A self-signed CA as `<name>.pem` and `<name>.key`.
    pub fn ca(&self, name: &str) {
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN=relay-test-{name}"),
        );
        self.openssl(&[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", &subj,
            "-keyout", &key, "-out", &pem,
        ]);
    }

    /// `<name>.pem` and `<name>.key` signed by the CA `<ca>`, with `san`.
    pub fn leaf(&self, ca: &str, name: &str, cn: &str, san: &str) {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.path(&ext),
            format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\n"),
        )
        .expect("write extensions");
        let (csr, key, pem, subj) = (
            format!("{name}.csr"),
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={cn}"),
        );
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        self.openssl(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", &subj, "-keyout", &key, "-out", &csr,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ]);
    }
}

/// `openssl s_server -WWW` serving a directory over HTTPS; killed on drop.
pub struct TlsTarget {
    child: std::process::Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl TlsTarget {
    /// A file the target made: `ca.pem`, `client.pem`, `client.key`.
    pub fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

impl Drop for TlsTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway CA; a server certificate whose subjectAltName is `san`; a
/// client certificate; and `s_server` on 127.0.0.1 serving `metrics` at
/// `/metrics`, demanding a client
/// certificate signed by the CA when `client_auth`.
pub fn tls_target(openssl: &Path, san: &str, client_auth: bool, metrics: &str) -> TlsTarget {
    let dir = Certs::make(openssl, san).dir;
    std::fs::write(dir.path().join("metrics"), metrics).expect("write body");
    let addr = format!("127.0.0.1:{}", super::free_port());
    let mut args = vec![
        "s_server",
        "-quiet",
        "-WWW",
        "-cert",
        "server.pem",
        "-key",
        "server.key",
        "-accept",
        &addr,
    ];
    if client_auth {
        args.extend(["-Verify", "1", "-CAfile", "ca.pem"]);
    }
    let child = Command::new(openssl)
        .args(&args)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    super::wait_for("openssl s_server to listen", || {
        std::net::TcpStream::connect(&addr).ok()
    });
    TlsTarget { child, addr, dir }
}
