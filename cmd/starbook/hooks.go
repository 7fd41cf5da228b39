package main

import (
	"log/slog"
	"os"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	"github.com/starbook/starbook/observe"
	"github.com/starbook/starbook/quota"
	"github.com/starbook/starbook/triggers"
)

// hooksOption serves the Alertmanager and webhook endpoints: POST
// /hooks/alertmanager, authenticated by STARBOOK_ALERTMANAGER_TOKEN or
// STARBOOK_ALERTMANAGER_USER/PASSWORD when set, and POST /hooks/{name},
// authenticated by each trigger's secret. node runs the executions they start
// when it has free workers.
//
// While storage refuses new runs, the hooks start nothing: every start is kept
// as a dead letter (reason storage) and the request is answered 507.
func hooksOption(store *cluster.Store, worker *node.Node, logger *slog.Logger, policy triggers.Policy, metrics *observe.Metrics, storage *quota.Guard) api.Option {
	tr := cluster.NewTriggers(store, nil, logger)
	tr.RunOn(worker)
	auth := api.AlertmanagerAuthFromEnv(os.LookupEnv)
	if !auth.Enabled() {
		logger.Warn("POST /hooks/alertmanager accepts unauthenticated requests: set " +
			api.EnvAlertmanagerToken + " or " + api.EnvAlertmanagerUser + "/" + api.EnvAlertmanagerPassword)
	}
	return api.WithHooks(&triggers.Dispatcher{Index: tr.Index(), Starter: &quota.Starter{Starter: tr, Guard: storage, DeadLetters: tr}, Resolver: tr, Logger: logger,
		DefaultPolicy: policy, DeadLetters: tr, Counted: metrics.AlertCounted}, auth)
}
