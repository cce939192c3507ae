// A partner's FAPI 2.0 client, as a partner would write it with openid-client v6 (+ jose):
// private_key_jwt client authentication, a pushed authorization request (PAR) with a DPoP
// proof, the citizen's approval in the OneCity app, the code exchange with DPoP, the ID token
// signature checked against the JWKS (enableNonRepudiationChecks), DPoP-bound userinfo,
// refresh and introspection, then a DPoP-bound client_credentials token used at
// POST /v1/codes/verify. Prints one JSON object with what it saw; exits 1 on any error.
//
// Input (environment): ONECITY_ISSUER, ONECITY_CLIENT_ID, ONECITY_CLIENT_JWK (the private
// Ed25519 JWK whose public half is registered), ONECITY_REDIRECT_URI, ONECITY_CITIZEN_TOKEN
// (the citizen's app access token: the test plays the app approving the request).

import * as client from 'openid-client'
import * as jose from 'jose'

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}

const issuer = env('ONECITY_ISSUER')
const clientId = env('ONECITY_CLIENT_ID')
const redirectUri = env('ONECITY_REDIRECT_URI')
const citizenToken = env('ONECITY_CITIZEN_TOKEN')
const privateJwk = JSON.parse(env('ONECITY_CLIENT_JWK'))

// The client's signing key (its public half is in the registered JWKS); jose imports it as a
// WebCrypto Ed25519 key, and openid-client signs assertions with alg "Ed25519" (RFC 9864).
const clientKey = await jose.importJWK(privateJwk, 'Ed25519')

const config = await client.discovery(
  new URL(issuer),
  clientId,
  { token_endpoint_auth_method: 'private_key_jwt' },
  client.PrivateKeyJwt({ key: clientKey, kid: privateJwk.kid }),
  { execute: [client.allowInsecureRequests] }, // the test server speaks plain HTTP on 127.0.0.1
)
// openid-client checks an ID token's signature only when asked to.
client.enableNonRepudiationChecks(config)

const server = config.serverMetadata()
const dpopKeys = await client.randomDPoPKeyPair('Ed25519')
const dpop = client.getDPoPHandle(config, dpopKeys)
const dpopJkt = await jose.calculateJwkThumbprint(await jose.exportJWK(dpopKeys.publicKey))

// 1. PAR with PKCE, state and nonce (and a DPoP proof: the code is bound to the key).
const codeVerifier = client.randomPKCECodeVerifier()
const state = client.randomState()
const nonce = client.randomNonce()
const authorizationUrl = await client.buildAuthorizationUrlWithPAR(
  config,
  {
    redirect_uri: redirectUri,
    scope: 'openid profile',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  },
  { DPoP: dpop },
)

// 2. The citizen approves in the app: the app posts client_id + request_uri.
const approval = await fetch(new URL('/oauth/authorize', issuer), {
  method: 'POST',
  headers: { authorization: `Bearer ${citizenToken}`, 'content-type': 'application/json' },
  body: JSON.stringify({
    client_id: authorizationUrl.searchParams.get('client_id'),
    request_uri: authorizationUrl.searchParams.get('request_uri'),
  }),
})
if (approval.status !== 200) throw new Error(`approval: ${approval.status} ${await approval.text()}`)
const { redirect_to: callback } = await approval.json()

// 3. Code exchange: iss and state of the response, PKCE, ID token (signature, nonce) checked.
const tokens = await client.authorizationCodeGrant(
  config,
  new URL(callback),
  { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true },
  undefined,
  { DPoP: dpop },
)
const idClaims = tokens.claims()

// 4. Userinfo with the DPoP-bound token; the same token as a plain Bearer is refused.
const userinfo = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub, { DPoP: dpop })
const asBearer = await fetch(server.userinfo_endpoint, {
  headers: { authorization: `Bearer ${tokens.access_token}` },
})

// 5. Refresh (DPoP again) and introspection of the new access token.
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: dpop })
const introspection = await client.tokenIntrospection(config, refreshed.access_token)

// 6. Machine access: a DPoP-bound client_credentials token at POST /v1/codes/verify.
const machine = await client.clientCredentialsGrant(config, { scope: 'codes:verify' }, { DPoP: dpop })
const verify = await client.fetchProtectedResource(
  config,
  machine.access_token,
  new URL('/v1/codes/verify', issuer),
  'POST',
  JSON.stringify({ payload: 'OC1:not-a-code' }),
  new Headers({ 'content-type': 'application/json' }),
  { DPoP: dpop },
)

console.log(
  JSON.stringify({
    server: {
      pushed_authorization_request_endpoint: server.pushed_authorization_request_endpoint,
      dpop_signing_alg_values_supported: server.dpop_signing_alg_values_supported,
    },
    dpop_jkt: dpopJkt,
    token_type: tokens.token_type,
    id_token: { iss: idClaims.iss, aud: idClaims.aud, nonce: idClaims.nonce, sub: idClaims.sub },
    access_token_cnf: jose.decodeJwt(tokens.access_token).cnf,
    userinfo,
    userinfo_as_bearer: { status: asBearer.status, www_authenticate: asBearer.headers.get('www-authenticate') },
    refreshed_token_type: refreshed.token_type,
    refresh_rotated: refreshed.refresh_token !== tokens.refresh_token,
    introspection,
    machine: { token_type: machine.token_type, scope: machine.scope, cnf: jose.decodeJwt(machine.access_token).cnf },
    verify: { status: verify.status, body: await verify.json() },
  }),
)
