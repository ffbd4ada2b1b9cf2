// Command microgateway-plugin is a microgateway plugin written in Go against the
// gateway's own contract (proto/microgateway/plugin/v1/plugin.proto) and served with
// HashiCorp go-plugin's plugin.Serve, so any go-plugin version from 1.0 on can build it.
//
// It adds headers in PreAuth and PostAuth (its pid among them) and a response header in
// OnResponseHeaders, and answers requests to /go-block itself with 403.
// Every header names the hook and says whether the gRPC connection from the gateway
// is TLS (x-go-plugin-tls: "mtls" when the gateway presented a client certificate,
// "tls" without one, "plain" otherwise), so tests can see AutoMTLS at work.
//
// Build it (GOPATH mode, with Debian's golang-github-hashicorp-go-plugin-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o microgateway-plugin .
//
// Regenerate plugin.pb.go and plugin_grpc.pb.go (protoc 3.21, protoc-gen-go 1.28,
// protoc-gen-go-grpc 1.0) from the repository root:
//
//	M=Mmicrogateway/plugin/v1/plugin.proto=microgateway-plugin/main
//	protoc -I proto --go_out=/tmp/gen --go_opt=paths=source_relative --go_opt=$M \
//	  --go-grpc_out=/tmp/gen --go-grpc_opt=paths=source_relative --go-grpc_opt=$M \
//	  microgateway/plugin/v1/plugin.proto
//	cp /tmp/gen/microgateway/plugin/v1/*.go examples/go/microgateway-plugin/
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// handshake matches the gateway's COOKIE_KEY, COOKIE_VALUE and APP_VERSION
// (src/remote/process.rs and src/remote/handshake.rs).
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "MICROGATEWAY_PLUGIN",
	MagicCookieValue: "7f3e2d1c-microgateway-plugin-v1",
}

// server implements the microgateway.plugin.v1.Plugin service.
type server struct {
	UnimplementedPluginServer
	mu       sync.Mutex
	tag      string
	instance string
	logged   bool
}

// transport says how the calling connection is secured.
func (s *server) transport(ctx context.Context) string {
	mode := "plain"
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			mode = "tls"
			if len(info.State.PeerCertificates) > 0 {
				mode = "mtls"
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.logged {
		s.logged = true
		fmt.Fprintf(os.Stderr, "go plugin %s: gateway connection is %s\n", s.instance, mode)
	}
	return mode
}

func (s *server) GetManifest(context.Context, *Empty) (*Manifest, error) {
	return &Manifest{
		Name:    "go-microgateway-plugin",
		Version: "1.0.0",
		Hooks:   []Hook{Hook_HOOK_PRE_AUTH, Hook_HOOK_POST_AUTH, Hook_HOOK_ON_RESPONSE_HEADERS},
	}, nil
}

func (s *server) Initialize(_ context.Context, req *InitializeRequest) (*InitializeResponse, error) {
	var config struct {
		Tag string `json:"tag"`
	}
	if text := req.GetConfigJson(); text != "" {
		if err := json.Unmarshal([]byte(text), &config); err != nil {
			return &InitializeResponse{Ok: false, Error: "config is not JSON: " + err.Error()}, nil
		}
	}
	s.mu.Lock()
	s.tag = config.Tag
	s.instance = req.GetInstance()
	s.mu.Unlock()
	return &InitializeResponse{Ok: true}, nil
}

// headers answers a request hook: it continues with headers naming the hook.
func (s *server) headers(ctx context.Context, hook string, req *HookRequest) *HookResponse {
	mode := s.transport(ctx)
	s.mu.Lock()
	tag := s.tag
	s.mu.Unlock()
	set := []*Header{
		{Name: "x-go-plugin-" + hook, Value: []byte(tag)},
		{Name: "x-go-plugin-tls", Value: []byte(mode)},
		{Name: "x-go-plugin-request-id", Value: []byte(req.GetRequest().GetRequestId())},
		{Name: "x-go-plugin-" + hook + "-pid", Value: []byte(strconv.Itoa(os.Getpid()))},
	}
	if id := req.GetAuth().GetIdentity(); id != "" {
		set = append(set, &Header{Name: "x-go-plugin-identity", Value: []byte(id)})
	}
	return &HookResponse{Decision: &HookResponse_ContinueRequest{ContinueRequest: &Continue{
		Headers: &HeaderMutations{Set: set},
		Context: map[string]string{"go-plugin-" + hook: "seen"},
	}}}
}

func (s *server) PreAuth(ctx context.Context, req *HookRequest) (*HookResponse, error) {
	if strings.HasPrefix(req.GetRequest().GetPath(), "/go-block") {
		return &HookResponse{Decision: &HookResponse_Respond{Respond: &Respond{
			Status: 403,
			Body:   []byte("blocked by the go plugin\n"),
		}}}, nil
	}
	return s.headers(ctx, "pre-auth", req), nil
}

func (s *server) PostAuth(ctx context.Context, req *HookRequest) (*HookResponse, error) {
	return s.headers(ctx, "post-auth", req), nil
}

func (s *server) OnResponseHeaders(ctx context.Context, req *ResponseHeadersRequest) (*ResponseHeadersResponse, error) {
	return &ResponseHeadersResponse{Headers: &HeaderMutations{Set: []*Header{
		{Name: "x-go-plugin-response", Value: []byte(s.transport(ctx))},
	}}}, nil
}

func (s *server) Ping(_ context.Context, req *PingRequest) (*PingResponse, error) {
	return &PingResponse{Nonce: req.GetNonce()}, nil
}

// contract is the go-plugin Plugin that registers the service on go-plugin's server.
type contract struct {
	plugin.NetRPCUnsupportedPlugin
}

func (contract) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	RegisterPluginServer(s, &server{})
	return nil
}

func (contract) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, fmt.Errorf("the gateway is the client; this binary only serves")
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         plugin.PluginSet{"microgateway": contract{}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
