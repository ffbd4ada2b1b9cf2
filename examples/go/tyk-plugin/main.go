// A plugin written the way Tyk AI Studio's microgateway examples are: one gRPC
// service, plugin.PluginService, served with HashiCorp go-plugin (handshake cookie
// AI_STUDIO_PLUGIN=v1, plugin name "plugin", gRPC only). microgateway hosts it
// unchanged, as file://, oci:// or, with --listen ADDR, as a plain gRPC server that
// registers only PluginService (Tyk's standalone form, grpc://).
//
// The .pb.go files next to it are generated from proto/tyk/plugin.proto:
//
//	protoc -I proto/tyk --go_out=examples/go/tyk-plugin --go_opt=paths=source_relative \
//	  --go-grpc_out=examples/go/tyk-plugin --go-grpc_opt=paths=source_relative plugin.proto
//
// What it does, for the tests and as an example of each hook:
//   - ProcessPreAuth: the process exits on "X-Crash" (to test restarts); a request
//     with "X-Block" is blocked with status block_status
//     (default 451), a JSON body and "X-Blocked-By"; any other gets "X-Tyk-Greeting"
//     (config greeting) and the context update tyk_tier=gold.
//   - Authenticate: the credential valid_token (default "moocow") is user 7 of app 42.
//   - ProcessPostAuth: copies the tier from the context metadata, the app id and the
//     traceparent of the trace context into "X-Tyk-Tier", "X-Tyk-App" and
//     "X-Tyk-Traceparent".
//   - OnBeforeWriteHeaders adds "X-Tyk-Response"; OnBeforeWrite wraps the body.
//   - OnStreamComplete and the data collection hooks append a JSON line to log_file.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Handshake is Tyk AI Studio's go-plugin handshake.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "AI_STUDIO_PLUGIN",
	MagicCookieValue: "v1",
}

type server struct {
	UnimplementedPluginServiceServer
	mu     sync.Mutex
	config map[string]string
}

func (s *server) get(key, fallback string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.config[key]; ok && v != "" {
		return v
	}
	return fallback
}

func (s *server) Initialize(_ context.Context, req *InitRequest) (*InitResponse, error) {
	if _, bad := req.Config["refuse"]; bad {
		return &InitResponse{Success: false, ErrorMessage: "configured to refuse"}, nil
	}
	s.mu.Lock()
	s.config = req.Config
	s.mu.Unlock()
	return &InitResponse{Success: true}, nil
}

func (s *server) Ping(_ context.Context, req *PingRequest) (*PingResponse, error) {
	return &PingResponse{Timestamp: req.Timestamp, Healthy: true}, nil
}

func (s *server) Shutdown(context.Context, *ShutdownRequest) (*ShutdownResponse, error) {
	return &ShutdownResponse{Success: true}, nil
}

func (s *server) ProcessPreAuth(_ context.Context, req *PluginRequest) (*PluginResponse, error) {
	if _, ok := req.Headers["X-Crash"]; ok {
		os.Exit(3)
	}
	if _, ok := req.Headers["X-Block"]; ok {
		code, _ := strconv.Atoi(s.get("block_status", "451"))
		return &PluginResponse{
			Block:      true,
			StatusCode: int32(code),
			Headers:    map[string]string{"X-Blocked-By": "tyk-go"},
			Body:       []byte(`{"error":"blocked by tyk plugin"}`),
		}, nil
	}
	return &PluginResponse{
		Modified:       true,
		Headers:        map[string]string{"X-Tyk-Greeting": s.get("greeting", "hello")},
		ContextUpdates: map[string]string{"tyk_tier": "gold"},
	}, nil
}

func (s *server) Authenticate(_ context.Context, req *AuthRequest) (*AuthResponse, error) {
	if req.Credential == s.get("valid_token", "moocow") {
		return &AuthResponse{Authenticated: true, UserId: "7", AppId: "42",
			Claims: map[string]string{"source": "tyk-go"}}, nil
	}
	return &AuthResponse{Authenticated: false, ErrorMessage: "invalid token"}, nil
}

func (s *server) ProcessPostAuth(_ context.Context, req *EnrichedRequest) (*PluginResponse, error) {
	ctx := req.GetRequest().GetContext()
	return &PluginResponse{
		Modified: true,
		Headers: map[string]string{
			"X-Tyk-Tier":        ctx.GetMetadata()["tyk_tier"],
			"X-Tyk-App":         fmt.Sprintf("%s/%d", req.AppId, ctx.GetAppId()),
			"X-Tyk-Traceparent": ctx.GetTraceContext()["traceparent"],
		},
	}, nil
}

func (s *server) OnBeforeWriteHeaders(_ context.Context, req *HeadersRequest) (*HeadersResponse, error) {
	headers := map[string]string{}
	for k, v := range req.Headers {
		headers[k] = v
	}
	headers["X-Tyk-Response"] = "yes"
	return &HeadersResponse{Modified: true, Headers: headers}, nil
}

func (s *server) OnBeforeWrite(_ context.Context, req *ResponseWriteRequest) (*ResponseWriteResponse, error) {
	if req.IsStreamChunk || len(req.Body) == 0 {
		return &ResponseWriteResponse{Modified: false}, nil
	}
	body := append([]byte(`{"tyk_wrapped":`), req.Body...)
	body = append(body, '}')
	return &ResponseWriteResponse{Modified: true, Body: body, Headers: req.Headers}, nil
}

func (s *server) record(kind string, fields map[string]interface{}) error {
	path := s.get("log_file", "")
	if path == "" {
		return nil
	}
	fields["kind"] = kind
	line, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(line, '\n'))
	return err
}

func (s *server) OnStreamComplete(_ context.Context, req *StreamCompleteRequest) (*StreamCompleteResponse, error) {
	err := s.record("stream_complete", map[string]interface{}{
		"request_id": req.GetContext().GetRequestId(), "status": req.StatusCode,
		"bytes": len(req.AccumulatedResponse),
	})
	if err != nil {
		return &StreamCompleteResponse{ErrorMessage: err.Error()}, nil
	}
	return &StreamCompleteResponse{Handled: true}, nil
}

func collected(err error) (*DataCollectionResponse, error) {
	if err != nil {
		return &DataCollectionResponse{Success: false, ErrorMessage: err.Error()}, nil
	}
	return &DataCollectionResponse{Success: true, Handled: true}, nil
}

func (s *server) HandleProxyLog(_ context.Context, req *ProxyLogRequest) (*DataCollectionResponse, error) {
	return collected(s.record("proxy_log", map[string]interface{}{
		"request_id": req.RequestId, "status": req.ResponseCode, "app_id": req.AppId,
		"user_id": req.UserId, "vendor": req.Vendor,
		"tier": req.GetContext().GetMetadata()["tyk_tier"],
	}))
}

func (s *server) HandleAnalytics(_ context.Context, req *AnalyticsRequest) (*DataCollectionResponse, error) {
	return collected(s.record("analytics", map[string]interface{}{
		"request_id": req.RequestId, "model": req.ModelName, "vendor": req.Vendor,
		"prompt_tokens": req.PromptTokens, "response_tokens": req.ResponseTokens,
	}))
}

func (s *server) HandleBudgetUsage(_ context.Context, req *BudgetUsageRequest) (*DataCollectionResponse, error) {
	return collected(s.record("budget", map[string]interface{}{
		"request_id": req.RequestId, "tokens": req.TokensUsed,
	}))
}

// grpcPlugin hands the service to go-plugin's gRPC server, as Tyk's SDK does.
type grpcPlugin struct {
	plugin.Plugin
	impl PluginServiceServer
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	RegisterPluginServiceServer(s, p.impl)
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return NewPluginServiceClient(c), nil
}

func main() {
	listen := flag.String("listen", "", "serve plain gRPC (PluginService only) on this address")
	flag.Parse()
	impl := &server{config: map[string]string{}}
	if *listen != "" {
		l, err := net.Listen("tcp", *listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		s := grpc.NewServer()
		RegisterPluginServiceServer(s, impl)
		fmt.Fprintf(os.Stderr, "listening on grpc://%s\n", l.Addr())
		if err := s.Serve(l); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         map[string]plugin.Plugin{"plugin": &grpcPlugin{impl: impl}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
