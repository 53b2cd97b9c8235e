package config

import (
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// TokenCredential builds the Azure AD credential for an identity-based connection: a managed identity when
// Credential is "managedidentity" or ClientID is set (user-assigned when ClientID is set), else
// DefaultAzureCredential. It does not contact Azure; tokens are fetched on first use.
func (c Connection) TokenCredential() (azcore.TokenCredential, error) {
	if c.Credential == CredentialManagedIdentity || c.ClientID != "" {
		opts := &azidentity.ManagedIdentityCredentialOptions{}
		if c.ClientID != "" {
			opts.ID = azidentity.ClientID(c.ClientID)
		}
		cred, err := azidentity.NewManagedIdentityCredential(opts)
		if err != nil {
			return nil, fmt.Errorf("config: managed identity credential: %w", err)
		}
		return cred, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("config: default Azure credential: %w", err)
	}
	return cred, nil
}
