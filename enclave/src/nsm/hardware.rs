//! The real NSM, through `/dev/nsm`.

use aws_nitro_enclaves_nsm_api::{
    api::{Request, Response},
    driver::{nsm_exit, nsm_init, nsm_process_request},
};
use nitro_signer_common::attestation::Pcr;
use serde_bytes::ByteBuf;

use super::{AttestationRequest, Nsm, NsmError};

/// The NSM device of a real Nitro Enclave.
#[derive(Debug)]
pub struct HardwareNsm {
    fd: i32,
}

impl HardwareNsm {
    /// Opens `/dev/nsm`. Fails outside a Nitro Enclave.
    pub fn open() -> Result<Self, NsmError> {
        let fd = nsm_init();
        if fd < 0 {
            return Err(NsmError::Device(
                "cannot open /dev/nsm (not in a Nitro Enclave?)".into(),
            ));
        }
        Ok(Self { fd })
    }

    fn request(&self, request: Request) -> Result<Response, NsmError> {
        match nsm_process_request(self.fd, request) {
            Response::Error(code) => Err(NsmError::Device(format!("{code:?}"))),
            response => Ok(response),
        }
    }
}

impl Drop for HardwareNsm {
    fn drop(&mut self) {
        nsm_exit(self.fd);
    }
}

impl Nsm for HardwareNsm {
    fn attest(&self, request: AttestationRequest<'_>) -> Result<Vec<u8>, NsmError> {
        request.check()?;
        let buf = |v: Option<&[u8]>| v.map(|v| ByteBuf::from(v.to_vec()));
        match self.request(Request::Attestation {
            user_data: buf(request.user_data),
            nonce: buf(request.nonce),
            public_key: buf(request.public_key),
        })? {
            Response::Attestation { document } => Ok(document),
            _ => Err(NsmError::Device("unexpected answer type".into())),
        }
    }

    fn fill_random(&self, buf: &mut [u8]) -> Result<(), NsmError> {
        let mut filled = 0;
        while filled < buf.len() {
            let Response::GetRandom { random } = self.request(Request::GetRandom)? else {
                return Err(NsmError::Device("unexpected answer to GetRandom".into()));
            };
            if random.is_empty() {
                return Err(NsmError::Device("GetRandom returned nothing".into()));
            }
            let rest = buf.get_mut(filled..).unwrap_or_default();
            let n = rest.len().min(random.len());
            rest.get_mut(..n)
                .zip(random.get(..n))
                .map(|(dst, src)| dst.copy_from_slice(src))
                .ok_or_else(|| NsmError::Device("GetRandom length".into()))?;
            filled += n;
        }
        Ok(())
    }

    fn pcr(&self, index: u8) -> Result<Pcr, NsmError> {
        match self.request(Request::DescribePCR {
            index: index.into(),
        })? {
            Response::DescribePCR { data, .. } => data
                .try_into()
                .map_err(|_| NsmError::Device(format!("PCR{index} is not 48 bytes"))),
            _ => Err(NsmError::Device("unexpected answer type".into())),
        }
    }
}
