// The e2e tests' in-cluster server (the busybox image has no TLS server), HTTPS on :8443
// with the certificate in /tls:
//   - /validate: a validating admission webhook denying any object labelled
//     sk8s-e2e-deny=yes with a message naming it;
//   - /convert: a CRD conversion webhook between gadgets' v1 (spec.colour) and v2
//     (spec.color);
//   - /apis/aggregated.e2e.sk8s.io/v1alpha1: an aggregated API whose `whoami` answers with the user
//     the aggregator asserted, trusted only from a client certificate of the front-proxy
//     CA in /tls/requestheader-ca.crt (as k8s.io/apiserver's requestheader authenticator).
// With the argument grpc-health it serves only grpc.health.v1.Health/Check, over HTTP/2
// without TLS on :5000 (a gRPC probe's target): service "" is SERVING, "sick" NOT_SERVING,
// any other NOT_FOUND, as grpc-go's health server answers.
// Every TLS client's hello is logged first (before its certificate checks can fail), so a
// test can tell that a target saw nothing.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
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

type conversionReview struct {
	Request *struct {
		UID               string           `json:"uid"`
		DesiredAPIVersion string           `json:"desiredAPIVersion"`
		Objects           []map[string]any `json:"objects"`
	} `json:"request"`
}

// rename moves spec.from to spec.to (the only difference between gadgets' versions).
func rename(obj map[string]any, from, to string) {
	if spec, ok := obj["spec"].(map[string]any); ok {
		if v, ok := spec[from]; ok {
			spec[to] = v
			delete(spec, from)
		}
	}
}

func convert(w http.ResponseWriter, r *http.Request) {
	var in conversionReview
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Request == nil {
		http.Error(w, "not a ConversionReview", http.StatusBadRequest)
		return
	}
	out := make([]map[string]any, 0, len(in.Request.Objects))
	for _, obj := range in.Request.Objects {
		if strings.HasSuffix(in.Request.DesiredAPIVersion, "/v2") {
			rename(obj, "colour", "color")
		} else {
			rename(obj, "color", "colour")
		}
		obj["apiVersion"] = in.Request.DesiredAPIVersion
		meta, _ := obj["metadata"].(map[string]any)
		annotations, _ := meta["annotations"].(map[string]any)
		if annotations == nil {
			annotations = map[string]any{}
		}
		annotations["e2e.sk8s.io/converted-by"] = os.Getenv("HOSTNAME")
		meta["annotations"] = annotations
		out = append(out, obj)
	}
	log.Printf("convert %s: %d objects to %s", in.Request.UID, len(out), in.Request.DesiredAPIVersion)
	body, _ := json.Marshal(map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
		"response": map[string]any{"uid": in.Request.UID, "convertedObjects": out,
			"result": map[string]any{"status": "Success"}}})
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

const groupVersion = "aggregated.e2e.sk8s.io/v1alpha1"

func discovery(w http.ResponseWriter, r *http.Request) {
	body, _ := json.Marshal(map[string]any{"kind": "APIResourceList", "apiVersion": "v1",
		"groupVersion": groupVersion, "resources": []map[string]any{
			{"name": "whoami", "singularName": "whoami", "namespaced": false, "kind": "WhoAmI",
				"verbs": []string{"list"}}}})
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// whoami answers with the user in X-Remote-User, believed only from a verified client
// certificate named front-proxy-client (tls.Config has checked it against the front-proxy
// CA); anyone else is Unauthorized, as an aggregated API server built on k8s.io/apiserver.
func whoami(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "front-proxy-client" {
		log.Printf("whoami: refused a request without the front proxy's certificate")
		http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`,
			http.StatusUnauthorized)
		return
	}
	user := r.Header.Get("X-Remote-User")
	log.Printf("whoami: %s via %s", user, r.TLS.PeerCertificates[0].Subject.CommonName)
	body, _ := json.Marshal(map[string]any{"kind": "WhoAmI", "apiVersion": groupVersion,
		"user": user, "groups": r.Header.Values("X-Remote-Group"),
		"proxiedBy": r.TLS.PeerCertificates[0].Subject.CommonName})
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func grpcHealth() {
	mux := http.NewServeMux()
	mux.HandleFunc("/grpc.health.v1.Health/Check", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
		service := ""
		if len(body) > 7 && body[5] == 0x0a && int(body[6]) == len(body)-7 { // one short string field
			service = string(body[7:])
		}
		log.Printf("health check of %q from %s (%s)", service, r.RemoteAddr, r.UserAgent())
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		switch service {
		case "":
			w.Write([]byte{0, 0, 0, 0, 2, 0x08, 1})
			w.Header().Set("Grpc-Status", "0")
		case "sick":
			w.Write([]byte{0, 0, 0, 0, 2, 0x08, 2})
			w.Header().Set("Grpc-Status", "0")
		default:
			w.Header().Set("Grpc-Status", "5")
			w.Header().Set("Grpc-Message", "unknown service")
		}
	})
	srv := &http.Server{Addr: ":5000", Handler: mux, Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true)
	log.Printf("serving grpc.health.v1 on :5000")
	log.Fatal(srv.ListenAndServe())
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "grpc-health" {
		grpcHealth()
	}
	cert, err := tls.LoadX509KeyPair("/tls/tls.crt", "/tls/tls.key")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", ":8443")
	if err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/validate", validate)
	http.HandleFunc("/convert", convert)
	http.HandleFunc("/apis/"+groupVersion, discovery)
	http.HandleFunc("/apis/"+groupVersion+"/whoami", whoami)
	conf := &tls.Config{Certificates: []tls.Certificate{cert}}
	if pem, err := os.ReadFile("/tls/requestheader-ca.crt"); err == nil {
		conf.ClientCAs = x509.NewCertPool()
		conf.ClientCAs.AppendCertsFromPEM(pem)
		conf.ClientAuth = tls.VerifyClientCertIfGiven // webhooks' callers present none
	}
	// A TLS client says hello; a load balancer's TCP health check never does.
	conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		log.Printf("client hello from %s", hello.Conn.RemoteAddr())
		return nil, nil
	}
	srv := &http.Server{TLSConfig: conf, ErrorLog: log.New(io.Discard, "", 0)}
	log.Printf("serving on :8443")
	log.Fatal(srv.Serve(tls.NewListener(ln, srv.TLSConfig)))
}
