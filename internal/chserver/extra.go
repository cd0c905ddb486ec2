package chserver

import (
	"fmt"
	"regexp"
	"strings"
)

// Extra is what a test adds to the packaged configuration: users with
// passwords, and TLS on the native protocol (tcp_port_secure).
type Extra struct {
	// Users is XML inserted into users.xml's <users>, e.g.
	// <writer><password>p</password><networks><ip>::/0</ip></networks>
	// <profile>default</profile><quota>default</quota></writer>.
	Users string
	// TLSCert and TLSKey are PEM files; with them the server also listens
	// with TLS on a free port (Server.SecureAddr).
	TLSCert, TLSKey string
	// TLSClientCA, when set with TLSCert, makes the server demand a client
	// certificate signed by this CA (verificationMode strict).
	TLSClientCA string
}

func (e Extra) secureAddr(port int) string {
	if e.TLSCert == "" {
		return ""
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func (e Extra) apply(cfg, users string, securePort int) (string, string, error) {
	if e.Users != "" {
		if !strings.Contains(users, "</users>") {
			return "", "", fmt.Errorf("chserver: no </users> in the packaged users.xml")
		}
		users = strings.Replace(users, "</users>", e.Users+"\n    </users>", 1)
	}
	if e.TLSCert == "" {
		return cfg, users, nil
	}
	if e.TLSKey == "" {
		return "", "", fmt.Errorf("chserver: a TLS certificate without its key")
	}
	// The packaged <openSSL><server> names /etc/clickhouse-server files and
	// a dhparam file that does not exist; point it at the test's files.
	for tag, value := range map[string]string{"certificateFile": e.TLSCert, "privateKeyFile": e.TLSKey} {
		re := regexp.MustCompile(`<` + tag + `>[^<]*</` + tag + `>`)
		if !re.MatchString(cfg) {
			return "", "", fmt.Errorf("chserver: no <%s> in the packaged config", tag)
		}
		cfg = re.ReplaceAllLiteralString(cfg, "<"+tag+">"+value+"</"+tag+">")
	}
	cfg = regexp.MustCompile(`.*<dhParamsFile>.*\n`).ReplaceAllString(cfg, "")
	if e.TLSClientCA != "" {
		// The first <verificationMode> is <openSSL><server>'s.
		re := regexp.MustCompile(`<verificationMode>[^<]*</verificationMode>`)
		loc := re.FindStringIndex(cfg)
		if loc == nil {
			return "", "", fmt.Errorf("chserver: no <verificationMode> in the packaged config")
		}
		cfg = cfg[:loc[0]] + "<verificationMode>strict</verificationMode><caConfig>" + e.TLSClientCA + "</caConfig>" + cfg[loc[1]:]
	}
	cfg = strings.Replace(cfg, "</yandex>", fmt.Sprintf("    <tcp_port_secure>%d</tcp_port_secure>\n</yandex>", securePort), 1)
	return cfg, users, nil
}
