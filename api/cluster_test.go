package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/api/apitest"
)

// clusterService is a fake that also reports the cluster.
type clusterService struct {
	apitest.Service
	status   *starbook.ClusterStatus
	notReady error
}

func (c *clusterService) Cluster(context.Context) (*starbook.ClusterStatus, error) {
	return c.status, nil
}
func (c *clusterService) Ready(context.Context) error { return c.notReady }

func TestClusterAndReadyz(t *testing.T) {
	svc := &clusterService{status: &starbook.ClusterStatus{Leader: "n1", Nodes: []starbook.NodeStatus{{ID: "n1", Leader: true, Claims: 2}}}}
	srv := httptest.NewServer(api.NewHandler(svc, nil))
	defer srv.Close()
	st, err := (&api.Client{BaseURL: srv.URL}).Cluster(context.Background())
	if err != nil || st.Leader != "n1" || st.Nodes[0].Claims != 2 {
		t.Fatalf("cluster: %+v, %v", st, err)
	}
	for _, tc := range []struct {
		notReady error
		status   int
	}{{nil, http.StatusOK}, {errors.New("session expired"), http.StatusServiceUnavailable}} {
		svc.notReady = tc.notReady
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("readyz with %v: %d %v, want %d", tc.notReady, resp.StatusCode, body, tc.status)
		}
	}
}
