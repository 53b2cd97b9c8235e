package atom_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

func adminClient(t *testing.T, srv *emulator.Server, connStr string) *admin.Client {
	t.Helper()
	ac, err := admin.NewClientFromConnectionString(connStr, &admin.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: toAdminPort{srv.AdminAddr()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ac
}

// TestStrictAuth: with strict auth the ATOM API needs a SAS token granting Manage, as Service
// Bus's management REST API does; the administration client signs every request with its
// connection string's key. Without strict auth any request is served (TestPermissiveAuth).
func TestStrictAuth(t *testing.T) {
	srv, err := emulator.Start(&emulator.Options{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", StrictAuth: true,
		Policies: []mgmt.SASKey{
			{KeyName: "listen-only", Key: "l1sten", Rights: mgmt.RightListen},
			{KeyName: "send-only", Key: "s3nd", Rights: mgmt.RightSend},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })

	root := adminClient(t, srv, srv.ConnectionString())
	if _, err := root.CreateQueue(ctx(t), "orders", nil); err != nil {
		t.Fatalf("CreateQueue with the Manage policy: %v", err)
	}
	if q, err := root.GetQueue(ctx(t), "orders", nil); err != nil || q == nil {
		t.Fatalf("GetQueue with the Manage policy: %v, %v", q, err)
	}
	pager := root.NewListQueuesPager(nil)
	if page, err := pager.NextPage(ctx(t)); err != nil || len(page.Queues) != 1 {
		t.Fatalf("ListQueues with the Manage policy: %+v, %v", page, err)
	}

	if _, err := root.CreateTopic(ctx(t), "events", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := root.CreateSubscription(ctx(t), "events", "all", nil); err != nil {
		t.Fatal(err)
	}

	// A valid token without Manage, answered as Microsoft's TestAdminClient_LackPermissions_Queue,
	// _Topic and _Subscription expect of the service.
	for _, policy := range []struct{ name, key string }{{"listen-only", "l1sten"}, {"send-only", "s3nd"}} {
		t.Run(policy.name, func(t *testing.T) {
			ac := adminClient(t, srv, srv.ConnectionStringFor(policy.name, policy.key))
			refused := func(what string, err error, want string) {
				t.Helper()
				if statusOf(err) != http.StatusUnauthorized || !strings.Contains(err.Error(), want) {
					t.Fatalf("%s: %v, want 401 with %q", what, err, want)
				}
			}
			if q, err := ac.GetQueue(ctx(t), "not-found-queue", nil); err != nil || q != nil {
				t.Fatalf("GetQueue of a missing queue: %+v, %v; want nil, nil as for any caller", q, err)
			}
			_, err := ac.GetQueue(ctx(t), "orders", nil)
			refused("GetQueue", err, "Manage,EntityRead claims required for this operation")
			_, err = ac.NewListQueuesPager(nil).NextPage(ctx(t))
			refused("ListQueues", err, "Manage,EntityRead claims required for this operation")
			_, err = ac.GetTopic(ctx(t), "events", nil)
			refused("GetTopic", err, ">Manage,EntityRead claims required for this operation")
			_, err = ac.CreateQueue(ctx(t), "refused", nil)
			refused("CreateQueue", err, "Authorization failed for specified action: Manage,EntityWrite")
			_, err = ac.UpdateQueue(ctx(t), "orders", admin.QueueProperties{}, nil)
			refused("UpdateQueue", err, "Authorization failed for specified action: Manage,EntityWrite")
			_, err = ac.DeleteQueue(ctx(t), "orders", nil)
			refused("DeleteQueue", err, "Authorization failed for specified action: Manage,EntityDelete.")
			_, err = ac.GetSubscription(ctx(t), "events", "all", nil)
			refused("GetSubscription", err, "401 SubCode=40100: Unauthorized : Unauthorized access for 'GetSubscription'")
			_, err = ac.NewListSubscriptionsPager("events", nil).NextPage(ctx(t))
			refused("ListSubscriptions", err, "401 SubCode=40100: Unauthorized : Unauthorized access for 'EnumerateSubscriptions' operation")
			_, err = ac.DeleteSubscription(ctx(t), "events", "all", nil)
			refused("DeleteSubscription", err, "401 SubCode=40100: Unauthorized : Unauthorized access for 'DeleteSubscription'")
		})
	}

	// A token that is not valid at all is refused whatever the request.
	for _, tc := range []struct{ name, connStr, want string }{
		{"wrong key", srv.ConnectionStringFor(emulator.DefaultKeyName, "not-the-key"), "signature does not match"},
		{"unknown policy", srv.ConnectionStringFor("nobody", "x"), "unknown key name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ac := adminClient(t, srv, tc.connStr)
			_, err := ac.CreateQueue(ctx(t), "refused", nil)
			if statusOf(err) != http.StatusUnauthorized || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CreateQueue: %v, want 401 with %q", err, tc.want)
			}
			_, err = ac.GetQueue(ctx(t), "not-found-queue", nil)
			if statusOf(err) != http.StatusUnauthorized {
				t.Fatalf("GetQueue of a missing queue: %v, want 401", err)
			}
		})
	}
	if q, err := root.GetQueue(ctx(t), "orders", nil); err != nil || q == nil {
		t.Fatalf("GetQueue after the refused calls: %+v, %v; want the queue (a refused DeleteQueue deleted it?)", q, err)
	}
	if q, err := root.GetQueue(ctx(t), "refused", nil); err != nil || q != nil {
		t.Fatalf("GetQueue of a refused CreateQueue: %+v, %v; want no queue", q, err)
	}

	// A request without Authorization.
	resp, err := http.Get("http://" + srv.AdminAddr() + "/orders?api-version=2021-05")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "<Code>401</Code>") ||
		!strings.Contains(string(body), "no Authorization header") {
		t.Fatalf("GET without Authorization: %d %s, want 401 with an <Error> naming the missing header", resp.StatusCode, body)
	}
}

// TestPermissiveAuth: without strict auth the ATOM API serves requests without Authorization,
// as the official emulator does.
func TestPermissiveAuth(t *testing.T) {
	srv, _, _ := start(t)
	resp, err := http.Get("http://" + srv.AdminAddr() + "/$namespaceinfo?api-version=2021-05")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET without Authorization in permissive mode: %d, want 200", resp.StatusCode)
	}
}

// recordAuth is toAdminPort keeping the Authorization header of the last request.
type recordAuth struct {
	toAdminPort
	last string
}

func (r *recordAuth) Do(req *http.Request) (*http.Response, error) {
	r.last = req.Header.Get("Authorization")
	return r.toAdminPort.Do(req)
}

// TestStrictAuthTokenScope: the administration client signs each request's URL, so a Manage token
// taken from a request on one queue manages that queue only (its name compared without case):
// replayed on another queue, on one whose name merely starts with it, on the namespace's queue feed
// or on $namespaceinfo, it is refused with 401 naming the token's resource.
func TestStrictAuthTokenScope(t *testing.T) {
	srv, err := emulator.Start(&emulator.Options{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", StrictAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	rec := &recordAuth{toAdminPort: toAdminPort{srv.AdminAddr()}}
	ac, err := admin.NewClientFromConnectionString(srv.ConnectionString(), &admin.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"orders", "ordersarchive", "payments"} {
		if _, err := ac.CreateQueue(ctx(t), q, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ac.GetQueue(ctx(t), "orders", nil); err != nil {
		t.Fatal(err)
	}
	token := rec.last
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/orders", http.StatusOK},
		{"/Orders", http.StatusOK},
		{"/payments", http.StatusUnauthorized},
		{"/ordersarchive", http.StatusUnauthorized},
		{"/$Resources/Queues", http.StatusUnauthorized},
		{"/$namespaceinfo", http.StatusUnauthorized},
	} {
		req, err := http.NewRequest(http.MethodGet, "http://"+srv.AdminAddr()+tc.path+"?api-version=2021-05", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want || (tc.want == http.StatusUnauthorized && !strings.Contains(string(body), "the token is for")) {
			t.Errorf("GET %s with the token of a request on orders: %d %.200s, want %d", tc.path, resp.StatusCode, body, tc.want)
		}
	}
}
