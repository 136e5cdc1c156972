// A tiny validating admission webhook for the e2e tests (the busybox image has no TLS
// server): HTTPS on :8443 with the certificate in /tls, denying any object labelled
// sk8s-e2e-deny=yes with a message naming it. Every TLS client's hello is logged first
// (before its certificate checks can fail), so a test can tell that a target saw nothing.
package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
)

type review struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Request    *request        `json:"request,omitempty"`
	Response   json.RawMessage `json:"response,omitempty"`
}

type request struct {
	UID    string `json:"uid"`
	Name   string `json:"name"`
	Object struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	} `json:"object"`
}

func validate(w http.ResponseWriter, r *http.Request) {
	var in review
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	resp := map[string]any{"uid": in.Request.UID, "allowed": true}
	if in.Request.Object.Metadata.Labels["sk8s-e2e-deny"] == "yes" {
		msg := fmt.Sprintf("denied by the sk8s e2e webhook in pod %s: %s is labelled sk8s-e2e-deny=yes",
			os.Getenv("HOSTNAME"), in.Request.Name)
		resp["allowed"] = false
		resp["status"] = map[string]any{"code": 403, "message": msg}
	}
	log.Printf("review %s of %s: allowed=%v", in.Request.UID, in.Request.Name, resp["allowed"])
	out, _ := json.Marshal(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"response": resp})
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

func main() {
	cert, err := tls.LoadX509KeyPair("/tls/tls.crt", "/tls/tls.key")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", ":8443")
	if err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/validate", validate)
	conf := &tls.Config{Certificates: []tls.Certificate{cert}}
	// A TLS client says hello; a load balancer's TCP health check never does.
	conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		log.Printf("client hello from %s", hello.Conn.RemoteAddr())
		return nil, nil
	}
	srv := &http.Server{TLSConfig: conf, ErrorLog: log.New(io.Discard, "", 0)}
	log.Printf("serving on :8443")
	log.Fatal(srv.Serve(tls.NewListener(ln, srv.TLSConfig)))
}
