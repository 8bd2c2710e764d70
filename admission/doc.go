// Package admission is Atoll's mutating admission webhook: it adds the
// tolerations a PlacementPolicy's tolerateIn asks for to the pods created
// in the namespaces it selects, so unchanged workloads there may run on
// virtual nodes, whose taints (virtual-kubelet.io/provider=atoll:NoSchedule
// by default) keep every other pod off them.
//
// The webhook configuration is the single place the rules live: one
// webhook per policy, whose namespaceSelector is the policy's, calls
// /tolerate/POLICY, and the configuration's AnnotationTolerations says
// which tolerations each policy adds. The leader writes it (Configurer);
// every replica serves it (Handler, reading the configuration from a
// watch), so a standby answers as the leader does.
//
//	cert, _ := admission.EnsureServingCert(ctx, client, "atoll-system", "atoll-admission-tls", hosts, 15*time.Second)
//	h := admission.NewHandler(client, "atoll", log)
//	go h.Run(ctx)
//	srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert.Certificate}}}
//	c := &admission.Configurer{Client: client, Name: "atoll", CABundle: cert.CABundle, URL: "https://atoll.example:8443"}
//	go c.Run(ctx, rules, ready) // rules: an *admission.RuleSet; ready: closed once it holds every node's
package admission
