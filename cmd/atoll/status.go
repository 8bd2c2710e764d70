package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/atoll-dev/atoll/reconcile"
)

// statusOptions are the flags of `atoll status`.
type statusOptions struct {
	masterOptions
	output string
}

func newStatusCommand() *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each cluster's virtual node: Ready, pods delegated, last applied revision, last error",
		Long: `Show the outcome Atoll stored in the master (ConfigMap atoll-status in
--namespace), with each node's Ready condition as the master sees it now.`,
		Example: `  atoll status
  atoll status -o json
  atoll status -o yaml --context prod-master`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.addFlags(cmd.Flags(), "warn")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "table, json or yaml")
	return cmd
}

// clusterRow is one line of `atoll status`.
type clusterRow struct {
	Name          string `json:"name"`
	NodeReady     string `json:"nodeReady"` // True, False, Unknown or Absent
	Reason        string `json:"reason,omitempty"`
	DelegatedPods int    `json:"delegatedPods"`
	Revision      string `json:"revision,omitempty"`
	LastError     string `json:"lastError,omitempty"`
	Draining      bool   `json:"draining,omitempty"`
	// CredentialsExpire and CredentialsRejected are about a token
	// `atoll cluster add` minted: when it expires, and why the remote
	// refused to renew it.
	CredentialsExpire   time.Time `json:"credentialsExpire,omitzero"`
	CredentialsRejected string    `json:"credentialsRejected,omitempty"`
}

type statusView struct {
	Revision    string       `json:"revision,omitempty"`
	Applied     string       `json:"applied,omitempty"`
	State       string       `json:"state,omitempty"`
	Description string       `json:"description,omitempty"`
	Error       string       `json:"error,omitempty"`
	Updated     time.Time    `json:"updated,omitzero"`
	Clusters    []clusterRow `json:"clusters"`
}

func runStatus(ctx context.Context, o statusOptions, w io.Writer) error {
	if err := checkOutput(o.output); err != nil {
		return err
	}
	cfg, client, err := o.master()
	if err != nil {
		return err
	}
	st, err := reconcile.ReadStatus(ctx, client, o.namespace)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	nodes, err := client.CoreV1().Nodes().List(cctx, metav1.ListOptions{LabelSelector: reconcile.LabelCluster})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	ready := map[string]string{}
	for _, n := range nodes.Items {
		ready[n.Name] = string(corev1.ConditionUnknown)
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready[n.Name] = string(c.Status)
			}
		}
	}
	v := statusView{Revision: st.Revision, Applied: st.Applied, State: string(st.State), Description: st.Description, Error: st.Error, Updated: st.Updated, Clusters: []clusterRow{}}
	seen := map[string]bool{}
	for _, c := range st.Clusters {
		seen[c.Name] = true
		row := clusterRow{Name: c.Name, NodeReady: ready[c.Name], Reason: c.Reason, DelegatedPods: c.DelegatedPods, Revision: c.Revision, LastError: c.LastError, Draining: c.Draining}
		if row.NodeReady == "" {
			row.NodeReady = "Absent"
		}
		v.Clusters = append(v.Clusters, row)
	}
	for _, n := range nodes.Items {
		if !seen[n.Name] {
			v.Clusters = append(v.Clusters, clusterRow{Name: n.Name, NodeReady: ready[n.Name], Reason: "NotDeclared"})
		}
	}
	creds := joinedCredentials(cctx, cfg, o.namespace)
	for i, c := range v.Clusters {
		if s, ok := creds[c.Name]; ok {
			_, v.Clusters[i].CredentialsExpire, _ = tokenTimes(&corev1.Secret{ObjectMeta: s})
			v.Clusters[i].CredentialsRejected = s.Annotations[annotationTokenRejected]
		}
	}
	if done, err := writeOutput(w, o.output, v); done {
		return err
	}
	if v.Revision == "" {
		fmt.Fprintf(w, "No outcome stored yet in %s/%s.\n", o.namespace, reconcile.StatusConfigMap)
	} else {
		fmt.Fprintf(w, "Revision %s: %s — %s (updated %s)\n", shortRev(v.Revision), v.State, v.Description, v.Updated.Local().Format(time.DateTime))
		if v.Error != "" {
			fmt.Fprintf(w, "Error: %s\n", v.Error)
		}
		if v.Applied != "" && v.Applied != v.Revision {
			fmt.Fprintf(w, "Last fully applied: %s\n", shortRev(v.Applied))
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tREADY\tPODS\tREVISION\tCREDENTIALS\tLAST ERROR")
	for _, c := range v.Clusters {
		state := c.NodeReady
		if c.Draining {
			state += " (draining)"
		} else if c.NodeReady != "True" && c.Reason != "" {
			state += " (" + c.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, state, strconv.Itoa(c.DelegatedPods), orDash(shortRev(c.Revision)),
			orDash(credentialsState(c, time.Now())), orDash(c.LastError))
	}
	return tw.Flush()
}

// credentialsState says how a token `atoll cluster add` minted stands:
// "rejected", "expired", "expire in 29d"; "" for other credentials.
func credentialsState(c clusterRow, now time.Time) string {
	switch {
	case c.CredentialsRejected != "":
		return "rejected"
	case c.CredentialsExpire.IsZero():
		return ""
	case !now.Before(c.CredentialsExpire):
		return "expired"
	}
	d := c.CredentialsExpire.Sub(now)
	if d >= 48*time.Hour {
		return fmt.Sprintf("expire in %dd", int(d/(24*time.Hour)))
	}
	return "expire in " + d.Round(time.Minute).String()
}

// joinedCredentials returns, by cluster, the metadata of the kubeconfig
// Secrets `atoll cluster add` wrote (labelled with the cluster); none when
// they cannot be listed (a user without the right sees no credentials
// column, not an error). Only metadata is read, never the kubeconfigs.
func joinedCredentials(ctx context.Context, cfg *rest.Config, namespace string) map[string]metav1.ObjectMeta {
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil
	}
	l, err := mc.Resource(corev1.SchemeGroupVersion.WithResource("secrets")).Namespace(namespace).List(ctx, metav1.ListOptions{LabelSelector: reconcile.LabelCluster})
	if err != nil {
		return nil
	}
	out := map[string]metav1.ObjectMeta{}
	for _, s := range l.Items {
		if _, ok := s.Annotations[annotationTokenExpires]; ok {
			out[s.Labels[reconcile.LabelCluster]] = s.ObjectMeta
		}
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
